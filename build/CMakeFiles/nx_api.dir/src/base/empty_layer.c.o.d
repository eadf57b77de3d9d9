CMakeFiles/nx_api.dir/src/base/empty_layer.c.o: \
 /work/main/src/base/empty_layer.c /usr/include/stdc-predef.h
