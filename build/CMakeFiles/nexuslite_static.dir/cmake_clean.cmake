file(REMOVE_RECURSE
  "libnexuslite.a"
  "libnexuslite.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/nexuslite_static.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
