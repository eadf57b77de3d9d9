#!/usr/bin/env bash
# ctest: plain-only
# A short real libFuzzer run of fuzz/fuzz_filter.c (filter/update/projection/sort parsers):
# builds the target with clang -fsanitize=fuzzer,address,undefined straight from the sources of
# the layers it needs (base, doc, match), then fuzzes for NX_FUZZ_SECONDS (default 10) from the
# seed corpus with the dictionary. Skips cleanly, and says so, when clang or libFuzzer is missing.
# Usage (ctest does this): fuzz_smoke_filter.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=${1:?build dir}
SRC=${2:?source dir}
OUT=$BUILD/fuzz-smoke-filter
SECONDS_TO_RUN=${NX_FUZZ_SECONDS:-10}
rm -rf "$OUT"
mkdir -p "$OUT/corpus"

if ! command -v clang >/dev/null 2>&1; then
  echo "SKIP: clang not found, libFuzzer smoke run skipped"
  exit 0
fi
cat > "$OUT/probe.c" <<'C'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }
C
if ! clang -fsanitize=fuzzer "$OUT/probe.c" -o "$OUT/probe" >/dev/null 2>&1; then
  echo "SKIP: clang cannot link -fsanitize=fuzzer (libFuzzer not installed), smoke run skipped"
  exit 0
fi

DEPS=$(pkg-config --cflags --libs libbson-1.0 libpcre2-8 libcrypto) || {
  echo "FAIL: pkg-config cannot find libbson/pcre2/libcrypto"; exit 1; }
# shellcheck disable=SC2086
if ! clang -std=c11 -D_GNU_SOURCE -DNX_BUILDING_LIBRARY -gline-tables-only -O1 \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$SRC/include" -I"$SRC/src/base" -I"$SRC/src/doc" -I"$SRC/src/match" \
    "$SRC"/src/base/*.c "$SRC"/src/doc/*.c "$SRC"/src/match/*.c "$SRC/fuzz/fuzz_filter.c" \
    $DEPS -lm -lpthread -o "$OUT/fuzz_filter" 2> "$OUT/build.log"; then
  echo "FAIL: building fuzz_filter with clang failed:"
  cat "$OUT/build.log"
  exit 1
fi

cd "$OUT" || exit 1
echo "fuzzing fuzz_filter for ${SECONDS_TO_RUN}s from $(ls "$SRC/fuzz/corpus/filter" | wc -l) seeds"
./fuzz_filter -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
  -dict="$SRC/fuzz/filter.dict" -print_final_stats=1 corpus "$SRC/fuzz/corpus/filter" \
  > fuzz.log 2>&1
rc=$?
tail -n 25 fuzz.log
if [ $rc -ne 0 ]; then
  # keep the finding where the next run's rm -rf does not reach, and show it in the test log
  KEEP="$BUILD/fuzz-findings/filter-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$KEEP"
  cp fuzz.log "$KEEP/" 2>/dev/null
  cp crash-* leak-* timeout-* oom-* slow-unit-* "$KEEP/" 2>/dev/null
  echo "---- the report (fuzz.log) ----"
  grep -n -A30 -E "ERROR|runtime error|SUMMARY|ALARM|out-of-memory|leak" fuzz.log | head -80
  for f in "$KEEP"/crash-* "$KEEP"/leak-* "$KEEP"/timeout-* "$KEEP"/oom-*; do
    [ -f "$f" ] && { echo "---- $f ----"; od -A d -c "$f" | head -40; }
  done
  echo "FAIL: libFuzzer found a problem (exit $rc); the input and log are kept in $KEEP"
  exit 1
fi
echo "OK: fuzz_filter ran ${SECONDS_TO_RUN}s without findings"
