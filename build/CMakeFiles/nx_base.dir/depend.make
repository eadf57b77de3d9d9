# Empty dependencies file for nx_base.
# This may be replaced when dependencies are built.
