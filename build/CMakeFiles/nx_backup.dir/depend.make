# Empty dependencies file for nx_backup.
# This may be replaced when dependencies are built.
