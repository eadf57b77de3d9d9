#----------------------------------------------------------------
# Generated CMake target import file for configuration "RelWithDebInfo".
#----------------------------------------------------------------

# Commands may need to know the format version.
set(CMAKE_IMPORT_FILE_VERSION 1)

# Import target "nexuslite::nexuslite_static" for configuration "RelWithDebInfo"
set_property(TARGET nexuslite::nexuslite_static APPEND PROPERTY IMPORTED_CONFIGURATIONS RELWITHDEBINFO)
set_target_properties(nexuslite::nexuslite_static PROPERTIES
  IMPORTED_LINK_INTERFACE_LANGUAGES_RELWITHDEBINFO "C"
  IMPORTED_LOCATION_RELWITHDEBINFO "${_IMPORT_PREFIX}/lib/libnexuslite.a"
  )

list(APPEND _cmake_import_check_targets nexuslite::nexuslite_static )
list(APPEND _cmake_import_check_files_for_nexuslite::nexuslite_static "${_IMPORT_PREFIX}/lib/libnexuslite.a" )

# Import target "nexuslite::nexuslite_shared" for configuration "RelWithDebInfo"
set_property(TARGET nexuslite::nexuslite_shared APPEND PROPERTY IMPORTED_CONFIGURATIONS RELWITHDEBINFO)
set_target_properties(nexuslite::nexuslite_shared PROPERTIES
  IMPORTED_LOCATION_RELWITHDEBINFO "${_IMPORT_PREFIX}/lib/libnexuslite.so.0.1.0"
  IMPORTED_SONAME_RELWITHDEBINFO "libnexuslite.so.0"
  )

list(APPEND _cmake_import_check_targets nexuslite::nexuslite_shared )
list(APPEND _cmake_import_check_files_for_nexuslite::nexuslite_shared "${_IMPORT_PREFIX}/lib/libnexuslite.so.0.1.0" )

# Commands beyond this point should not need to know the version.
set(CMAKE_IMPORT_FILE_VERSION)
