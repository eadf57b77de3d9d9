# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(test_base "/work/main/build/tests/test_base" "--jobs=1")
set_tests_properties(test_base PROPERTIES  ENVIRONMENT "CRITERION_JOBS=1;NX_BUILD_DIR=/work/main/build;NX_SOURCE_DIR=/work/main" LABELS "fast" TIMEOUT "300" WORKING_DIRECTORY "/work/main/build/tests" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;42;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(sh_check_layers "bash" "/work/main/tests/check_layers.sh" "/work/main/build" "/work/main")
set_tests_properties(sh_check_layers PROPERTIES  LABELS "fast" TIMEOUT "600" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;67;add_test;/work/main/tests/CMakeLists.txt;0;")
