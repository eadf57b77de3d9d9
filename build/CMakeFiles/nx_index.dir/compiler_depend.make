# Empty compiler generated dependencies file for nx_index.
# This may be replaced when dependencies are built.
