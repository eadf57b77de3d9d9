# Empty dependencies file for nx_storage.
# This may be replaced when dependencies are built.
