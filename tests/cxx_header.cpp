// Compiles the public header as C++ (issue 2: "usable from C++, checked by compiling a test with g++").
#include <nexuslite.h>
#include <cstdio>
#include <cstring>

int main() {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  nx_in in = nx_json("{\"a\": 1}");
  nx_find_opts f = NX_FIND_OPTS_INIT;
  (void)f;
  if (o.page_size != 4096 || in.json == nullptr) return 1;
  if (std::strcmp(nx_code_name(NX_LOCKED), "NX_LOCKED") != 0) return 1;
  std::printf("1 passed, 0 failed\n");
  return 0;
}
