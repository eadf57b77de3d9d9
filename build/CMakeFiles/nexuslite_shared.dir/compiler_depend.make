# Empty compiler generated dependencies file for nexuslite_shared.
# This may be replaced when dependencies are built.
