# Empty compiler generated dependencies file for nx_match.
# This may be replaced when dependencies are built.
