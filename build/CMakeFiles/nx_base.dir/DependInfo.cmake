
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/src/base/alloc.c" "CMakeFiles/nx_base.dir/src/base/alloc.c.o" "gcc" "CMakeFiles/nx_base.dir/src/base/alloc.c.o.d"
  "/work/main/src/base/buf.c" "CMakeFiles/nx_base.dir/src/base/buf.c.o" "gcc" "CMakeFiles/nx_base.dir/src/base/buf.c.o.d"
  "/work/main/src/base/clock.c" "CMakeFiles/nx_base.dir/src/base/clock.c.o" "gcc" "CMakeFiles/nx_base.dir/src/base/clock.c.o.d"
  "/work/main/src/base/crc32c.c" "CMakeFiles/nx_base.dir/src/base/crc32c.c.o" "gcc" "CMakeFiles/nx_base.dir/src/base/crc32c.c.o.d"
  "/work/main/src/base/empty_layer.c" "CMakeFiles/nx_base.dir/src/base/empty_layer.c.o" "gcc" "CMakeFiles/nx_base.dir/src/base/empty_layer.c.o.d"
  "/work/main/src/base/err.c" "CMakeFiles/nx_base.dir/src/base/err.c.o" "gcc" "CMakeFiles/nx_base.dir/src/base/err.c.o.d"
  "/work/main/src/base/status.c" "CMakeFiles/nx_base.dir/src/base/status.c.o" "gcc" "CMakeFiles/nx_base.dir/src/base/status.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
