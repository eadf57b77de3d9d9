file(REMOVE_RECURSE
  "CMakeFiles/nx_doc.dir/src/base/empty_layer.c.o"
  "CMakeFiles/nx_doc.dir/src/base/empty_layer.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/nx_doc.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
