# Empty compiler generated dependencies file for nx_os.
# This may be replaced when dependencies are built.
