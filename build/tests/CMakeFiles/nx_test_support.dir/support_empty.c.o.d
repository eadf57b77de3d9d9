tests/CMakeFiles/nx_test_support.dir/support_empty.c.o: \
 /work/main/tests/support_empty.c /usr/include/stdc-predef.h
