# Empty compiler generated dependencies file for nexuslite_static.
# This may be replaced when dependencies are built.
