# Empty dependencies file for nx_engine.
# This may be replaced when dependencies are built.
