file(REMOVE_RECURSE
  "CMakeFiles/nx_test_support.dir/support_empty.c.o"
  "CMakeFiles/nx_test_support.dir/support_empty.c.o.d"
  "libnx_test_support.a"
  "libnx_test_support.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/nx_test_support.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
