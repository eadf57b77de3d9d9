# Empty dependencies file for nx_query.
# This may be replaced when dependencies are built.
