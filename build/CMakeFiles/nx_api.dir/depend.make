# Empty dependencies file for nx_api.
# This may be replaced when dependencies are built.
