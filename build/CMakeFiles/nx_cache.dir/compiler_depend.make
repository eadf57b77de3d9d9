# Empty compiler generated dependencies file for nx_cache.
# This may be replaced when dependencies are built.
