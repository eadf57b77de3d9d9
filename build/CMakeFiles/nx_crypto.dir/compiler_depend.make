# Empty compiler generated dependencies file for nx_crypto.
# This may be replaced when dependencies are built.
