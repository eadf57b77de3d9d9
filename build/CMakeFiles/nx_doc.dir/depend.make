# Empty dependencies file for nx_doc.
# This may be replaced when dependencies are built.
