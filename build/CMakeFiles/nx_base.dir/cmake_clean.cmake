file(REMOVE_RECURSE
  "CMakeFiles/nx_base.dir/src/base/alloc.c.o"
  "CMakeFiles/nx_base.dir/src/base/alloc.c.o.d"
  "CMakeFiles/nx_base.dir/src/base/buf.c.o"
  "CMakeFiles/nx_base.dir/src/base/buf.c.o.d"
  "CMakeFiles/nx_base.dir/src/base/clock.c.o"
  "CMakeFiles/nx_base.dir/src/base/clock.c.o.d"
  "CMakeFiles/nx_base.dir/src/base/crc32c.c.o"
  "CMakeFiles/nx_base.dir/src/base/crc32c.c.o.d"
  "CMakeFiles/nx_base.dir/src/base/empty_layer.c.o"
  "CMakeFiles/nx_base.dir/src/base/empty_layer.c.o.d"
  "CMakeFiles/nx_base.dir/src/base/err.c.o"
  "CMakeFiles/nx_base.dir/src/base/err.c.o.d"
  "CMakeFiles/nx_base.dir/src/base/status.c.o"
  "CMakeFiles/nx_base.dir/src/base/status.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/nx_base.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
