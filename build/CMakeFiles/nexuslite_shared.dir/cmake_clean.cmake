file(REMOVE_RECURSE
  "libnexuslite.pdb"
  "libnexuslite.so"
  "libnexuslite.so.0"
  "libnexuslite.so.0.1.0"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/nexuslite_shared.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
