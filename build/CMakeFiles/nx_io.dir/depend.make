# Empty dependencies file for nx_io.
# This may be replaced when dependencies are built.
