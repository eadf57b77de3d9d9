#!/usr/bin/env bash
# ctest: plain-only
# Installs the built library into a temporary prefix and builds a tiny program against the
# installed copy twice: with pkg-config, and with CMake's find_package(nexuslite).
set -u
build=${1:?build dir}; src=${2:?source dir}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { echo "ok: $1"; pass=$((pass+1)); }
bad() { echo "FAIL: $1"; fail=$((fail+1)); }

if cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1; then ok "cmake --install"; else cat "$tmp/install.log"; bad "cmake --install"; fi
[ -f "$tmp/prefix/include/nexuslite.h" ] && ok "header installed" || bad "header installed"
ls "$tmp/prefix"/lib*/libnexuslite.a >/dev/null 2>&1 && ok "static library installed" || bad "static library installed"
ls "$tmp/prefix"/lib*/libnexuslite.so >/dev/null 2>&1 && ok "shared library installed" || bad "shared library installed"

cat > "$tmp/hello.c" <<'C'
#include <nexuslite.h>
#include <stdio.h>
int main(void) {
  printf("nexuslite %s: %s\n", nx_version(), nx_strerror(NX_CORRUPT));
  return 0;
}
C
libdir=$(ls -d "$tmp/prefix"/lib* | head -1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
if cc -std=c11 -o "$tmp/hello_pc" "$tmp/hello.c" $(pkg-config --cflags --libs nexuslite) >"$tmp/pc.log" 2>&1 \
   && LD_LIBRARY_PATH="$libdir" "$tmp/hello_pc" | grep -q "nexuslite 0.1.0: database file is corrupt"; then
  ok "pkg-config build and run"
else cat "$tmp/pc.log"; bad "pkg-config build and run"; fi

mkdir -p "$tmp/proj"
cp "$tmp/hello.c" "$tmp/proj/hello.c"
cat > "$tmp/proj/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(hello C)
find_package(nexuslite REQUIRED)
add_executable(hello hello.c)
target_link_libraries(hello PRIVATE nexuslite::nexuslite)
CM
if cmake -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/cm.log" 2>&1 \
   && cmake --build "$tmp/proj/build" >>"$tmp/cm.log" 2>&1 \
   && LD_LIBRARY_PATH="$libdir" "$tmp/proj/build/hello" | grep -q "nexuslite 0.1.0"; then
  ok "find_package build and run"
else cat "$tmp/cm.log"; bad "find_package build and run"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
