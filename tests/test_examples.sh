#!/usr/bin/env bash
# test_examples.sh BUILD_DIR SOURCE_DIR: runs every built example (BUILD_DIR/examples/ex_*) in a
# temporary directory, twice on the same database file (each example must start afresh), checks
# that it exits 0, and, for the examples listed below, that its output holds the expected lines
# (exact lines: the figures the README quotes cannot rot).
set -u
build=$(cd "${1:?build dir}" && pwd)
src=${2:-}
tmp=$(mktemp -d /tmp/nx_examples.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ran=0

expect_lines() { # name output-file lines...
  local name=$1 out=$2
  shift 2
  for line in "$@"; do
    if ! grep -Fxq -- "$line" "$out"; then
      echo "FAIL $name: missing line: $line"
      fail=1
    fi
  done
}

for ex in "$build"/examples/ex_*; do
  [ -x "$ex" ] || continue
  name=$(basename "$ex")
  for run in 1 2; do
    out="$tmp/$name.$run.out"
    if ! (cd "$tmp" && "$ex" "$tmp/$name.db" >"$out" 2>&1); then
      echo "FAIL $name (run $run) exited non-zero:"
      cat "$out"
      fail=1
      continue
    fi
  done
  ran=$((ran + 1))
  out="$tmp/$name.2.out"
  case $name in
  ex_documents)
    expect_lines "$name" "$out" \
      "generated _id: binary subtype 4, 16 bytes, UUID version 7" \
      "metadata: version 1, created == updated: yes" \
      "count: 5" \
      "three oldest:" \
      '  { "name" : "Zoe", "age" : 41 }' \
      '  { "name" : "Cid", "age" : 35 }' \
      '  { "name" : "Ann", "age" : 30 }' \
      '  { "_id" : 1, "name" : "Ann" }' \
      '  { "_id" : 2, "name" : "Bob" }' \
      '  { "_id" : 3, "name" : "Cid" }' \
      'distinct cities: { "values" : [ "Oslo", "Paris", "Rome" ] }' \
      "update_many: matched 2, modified 2" \
      "same \$set again: matched 2, modified 0" \
      "upsert: matched 0, upserted yes" \
      '  { "_id" : 2, "name" : "Bob", "age" : 25, "city" : "Rome", "tags" : [ "dev", "ops" ] }' \
      'find_one_and_update (after): { "name" : "Dee", "age" : 38 }' \
      "deleted 3 people aged 36 or more" \
      "count: 3"
    grep -q "^insert_many with a duplicate: NX_EXISTS at document 1 " "$out" || { echo "FAIL $name: insert_many line"; fail=1; }
    grep -q "^bad field name: NX_INVALID: .*\$bad" "$out" || { echo "FAIL $name: bad field line"; fail=1; }
    grep -q "^unknown operator: NX_INVALID: .*\$gtx" "$out" || { echo "FAIL $name: operator line"; fail=1; }
    ;;
  ex_transactions)
    expect_lines "$name" "$out" \
      "start: alice 100, bob 20, ledger 0" \
      "transfer 30 alice->bob: NX_OK; alice 70, bob 50, ledger 1" \
      "transfer 500 bob->alice: NX_INVALID (insufficient funds); alice 70, bob 50, ledger 1" \
      "transfer 10 alice->bob, aborted: NX_CANCELLED; alice 70, bob 50, ledger 1" \
      "snapshot sees alice 70, ledger 1; now alice 65, ledger 2" \
      "inside: alice 66; outside: alice 65" \
      "after commit: alice 66, bob 56, total 122"
    grep -q "^write inside the read transaction: NX_READONLY: " "$out" || { echo "FAIL $name: readonly line"; fail=1; }
    ;;
  ex_kv)
    expect_lines "$name" "$out" \
      '  user:1 = { "name" : "John", "roles" : [ "admin" ] }' \
      '  config:theme = "dark"' \
      "  counter = 42" \
      "  missing: NX_NOTFOUND" \
      'keys with prefix "user:" (2): user:1 user:2' \
      'keys with prefix "" (4): config:theme counter user:1 user:2' \
      "has user:2: yes" \
      'keys with prefix "user:" (2): user:1 user:3' \
      "  counter = 43" \
      'keys with prefix "" (4): config:theme counter user:1 user:3' \
      "bad value: NX_PARSE"
    ;;
  esac
done

for want in ex_documents ex_transactions ex_kv; do
  [ -x "$build/examples/$want" ] || { echo "FAIL: example $want was not built"; fail=1; }
done
echo "examples run: $ran"
[ "$ran" -gt 0 ] || fail=1
exit $fail
