#!/usr/bin/env bash
# ctest: plain-only
# A short real libFuzzer run of the import readers: fuzz/fuzz_csv.c, fuzz_ndjson.c, fuzz_bson.c
# (issue 6). Builds the library sources once with clang -fsanitize=fuzzer-no-link,address,undefined,
# links the three targets with -fsanitize=fuzzer, then fuzzes each for NX_FUZZ_SECONDS (default 5)
# from its seed corpus with its dictionary. Skips cleanly, and says so, when clang or libFuzzer is
# missing. Usage (ctest does this): fuzz_smoke_io.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=${1:?build dir}
SRC=${2:?source dir}
OUT=$BUILD/fuzz-smoke-io
SECONDS_TO_RUN=${NX_FUZZ_SECONDS:-5}
rm -rf "$OUT"
mkdir -p "$OUT/obj"

if ! command -v clang >/dev/null 2>&1; then
  echo "SKIP: clang not found, libFuzzer smoke run skipped"
  echo "0 passed, 0 failed"
  exit 0
fi
cat > "$OUT/probe.c" <<'C'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }
C
if ! clang -fsanitize=fuzzer "$OUT/probe.c" -o "$OUT/probe" >/dev/null 2>&1; then
  echo "SKIP: clang cannot link -fsanitize=fuzzer (libFuzzer not installed), smoke run skipped"
  echo "0 passed, 0 failed"
  exit 0
fi

DEPS=$(pkg-config --cflags --libs libbson-1.0 libpcre2-8 libcrypto libzstd liblz4) || {
  echo "FAIL: pkg-config cannot find the dependencies"; exit 1; }
INC=(-I"$SRC/include")
for d in "$SRC"/src/*/; do INC+=(-I"$d"); done
FLAGS=(-std=c11 -D_GNU_SOURCE -DNX_BUILDING_LIBRARY -gline-tables-only -O1 -fno-sanitize-recover=all)
# One object per library source, named layer_file.o, built in parallel.
ls "$SRC"/src/*/*.c | grep -v '/empty_layer.c$' | \
  xargs -P 2 -I{} sh -c 'o="$1/obj/$(basename "$(dirname "$2")")_$(basename "$2" .c).o"; shift 2; exec clang "$@" -c "$0" -o "$o"' \
  {} "$OUT" "{}" "${FLAGS[@]}" -fsanitize=fuzzer-no-link,address,undefined "${INC[@]}" \
  $(pkg-config --cflags libbson-1.0) 2> "$OUT/build.log" || {
  echo "FAIL: compiling the library for fuzzing failed:"; cat "$OUT/build.log"; exit 1; }

pass=0; fail=0
for t in csv ndjson bson; do
  # shellcheck disable=SC2086
  if ! clang "${FLAGS[@]}" -fsanitize=fuzzer,address,undefined "${INC[@]}" "$SRC/fuzz/fuzz_$t.c" \
      "$OUT"/obj/*.o $DEPS -lcsv -largon2 -lm -lpthread -o "$OUT/fuzz_$t" 2>> "$OUT/build.log"; then
    echo "FAIL: linking fuzz_$t failed:"; tail -20 "$OUT/build.log"; fail=$((fail + 1)); continue
  fi
  mkdir -p "$OUT/corpus_$t"
  dict=()
  [ -f "$SRC/fuzz/$t.dict" ] && dict=(-dict="$SRC/fuzz/$t.dict")
  (cd "$OUT" && ./fuzz_$t -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 \
     -max_len=8192 "${dict[@]}" -print_final_stats=1 "corpus_$t" "$SRC/fuzz/corpus/$t" > "fuzz_$t.log" 2>&1)
  rc=$?
  tail -n 4 "$OUT/fuzz_$t.log"
  if [ $rc -ne 0 ]; then
    KEEP="$BUILD/fuzz-findings/$t-$(date +%Y%m%d-%H%M%S)"
    mkdir -p "$KEEP"
    cp "$OUT/fuzz_$t.log" "$KEEP/" 2>/dev/null
    cp "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* "$KEEP/" 2>/dev/null
    grep -n -A30 -E "ERROR|runtime error|SUMMARY|ALARM|out-of-memory|leak" "$OUT/fuzz_$t.log" | head -80
    echo "FAIL: libFuzzer found a problem in fuzz_$t (exit $rc); the input and log are kept in $KEEP"
    fail=$((fail + 1))
  else
    echo "OK: fuzz_$t ran ${SECONDS_TO_RUN}s without findings"
    pass=$((pass + 1))
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
