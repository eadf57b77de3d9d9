#!/bin/bash
# test_cli.sh: every nexuslite command end to end, with its happy path, its errors (bad filter,
# missing collection, locked database, malformed input) and its exit status (0 ok, 1 error,
# 2 usage, 3 not found, 4 locked, 5 corrupt). Usage: bash tests/test_cli.sh BUILD_DIR SOURCE_DIR
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "${2:-.}" && pwd)
NX="$BUILD/nexuslite"
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

if [ ! -x "$NX" ]; then
  echo "FAIL nexuslite binary not found at $NX"
  echo "0 passed, 1 failed"
  exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/nx_cli.XXXXXX")
HOLDER=
cleanup() {
  if [ -n "$HOLDER" ]; then kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; fi
  rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1
export HOME="$T" XDG_CONFIG_HOME="$T/xdg" NO_COLOR=1
unset NEXUSLITE_DB NEXUSLITE_DURABILITY NEXUSLITE_PRETTY NEXUSLITE_QUIET NEXUSLITE_COLOR \
  NEXUSLITE_KEY NEXUSLITE_KEY_FILE NEXUSLITE_HISTORY NEXUSLITE_CACHE_MB NEXUSLITE_PAGE_SIZE \
  NEXUSLITE_CHECKPOINT_THREAD

# run CMD...: runs nexuslite with stdin from /dev/null unless IN is set; sets rc, out, err.
run() {
  if [ -n "$IN" ]; then "$NX" "$@" <"$IN" >"$T/out" 2>"$T/err"; else "$NX" "$@" </dev/null >"$T/out" 2>"$T/err"; fi
  rc=$?
  out=$(cat "$T/out")
  err=$(cat "$T/err")
}
# expect NAME RC [STDOUT]: checks the last run.
expect() {
  local name=$1 want=$2
  if [ "$rc" != "$want" ]; then
    bad "$name: exit $rc, want $want"; echo "  stdout: ${out:0:300}"; echo "  stderr: ${err:0:300}"; return
  fi
  if [ $# -ge 3 ] && [ "$out" != "$3" ]; then
    bad "$name: stdout differs"; echo "  got:  ${out:0:400}"; echo "  want: ${3:0:400}"; return
  fi
  ok "$name"
}
# has NAME WHERE TEXT: the last run's stdout or stderr contains TEXT.
has() {
  local v
  if [ "$2" = out ]; then v=$out; else v=$err; fi
  if [[ "$v" == *"$3"* ]]; then ok "$1"; else bad "$1: '$3' not in $2"; echo "  $2: ${v:0:400}"; fi
}
hasnt() {
  local v
  if [ "$2" = out ]; then v=$out; else v=$err; fi
  if [[ "$v" != *"$3"* ]]; then ok "$1"; else bad "$1: '$3' found in $2"; fi
}

DB="--db t.db"

# ---- version, help, usage ----
run version; expect "version" 0; has "version names the format" out "file format"
run --help; expect "--help" 0; has "--help lists exit codes" out "Exit status"
run find --help; expect "find --help" 0; has "find --help lists --filter" out "--filter"
run frobnicate; expect "unknown command is a usage error" 2; has "unknown command named" err "frobnicate"
run help nosuch; expect "help for an unknown command" 2
run </dev/null; expect "no command without a terminal prints usage" 2; has "usage on stderr" err "usage:"
run help --man; expect "help --man" 0
if [ -f "$SRC/docs/nexuslite.1" ] && [ "$out" = "$(cat "$SRC/docs/nexuslite.1")" ]; then
  ok "docs/nexuslite.1 equals nexuslite help --man"
else
  bad "docs/nexuslite.1 differs from nexuslite help --man (regenerate it)"
fi
run $DB --durability sometimes count users; expect "bad --durability" 2; has "durability message" err "full, normal or off"

# ---- a missing database is never created by a read ----
run $DB find users; expect "find on a missing database" 3
[ ! -e t.db ] && ok "read command did not create the database" || bad "t.db was created by find"

# ---- insert ----
run $DB insert users '{_id: 1, name: "alice", age: 30, city: "Paris"}' '[{_id: 2, name: "bob", age: 25, city: "Lyon"}, {_id: 3, name: "carol", age: 35}]'
expect "insert arguments" 0; has "insert summary" err "inserted 3 documents"
printf '%s\n' '{"_id": 4, "name": "dave", "age": 41, "city": "Paris"}' '' '{_id: 5, name: "erin", age: 19, tags: ["a", "b"]}' >"$T/in.ndjson"
IN="$T/in.ndjson" run $DB --quiet insert users; expect "insert NDJSON from stdin" 0 ""
run $DB insert users '{_id: 6, name: }'; expect "malformed document" 2; has "malformed names the offset" err "offset"
run $DB insert users '{_id: 1, name: "again"}'; expect "duplicate _id" 1; has "duplicate reported" err "NX_EXISTS"
printf '%s\n' '{"_id": 7}' '{"_id": 8, oops}' >"$T/bad.ndjson"
IN="$T/bad.ndjson" run $DB insert users; expect "bad NDJSON line" 2; has "line number named" err "line 2"
run $DB count users; expect "nothing of a bad batch was inserted" 0 "5"

# ---- find ----
run $DB find users --filter '{age: {$gt: 25}}' --sort -age --project name
expect "find filter sort project" 0 '{"_id":4,"name":"dave"}
{"_id":3,"name":"carol"}
{"_id":1,"name":"alice"}'
run $DB find users '{city: "Paris"}' --project name,city --sort +name --output csv
expect "find csv" 0 'name,city
alice,Paris
dave,Paris'
run $DB find users --sort _id --skip 1 --limit 2 --project name --output json
expect "find json skip limit" 0 '[
{"_id":2,"name":"bob"},
{"_id":3,"name":"carol"}
]'
run $DB --pretty find users --filter '{_id: 5}'
expect "find --pretty" 0 '[
  {
    "_id": 5,
    "name": "erin",
    "age": 19,
    "tags": [
      "a",
      "b"
    ]
  }
]'
run $DB find users --filter '{age: {$lt: 30}}' --sort _id --project name,age --output table
expect "find table (columns: the --project list)" 0 'name  age
----  ---
bob   25
erin  19
(2 rows)'
run $DB find users --filter '{name: /^A/i}' --project name; expect "find with a regex literal" 0 '{"_id":1,"name":"alice"}'
run $DB find users --filter '{age: {$frob: 3}}'; expect "bad filter operator" 2; has "bad filter names the operator" err '$frob'
run $DB find users --filter '{age: '; expect "malformed filter" 2; has "malformed filter says where" err "offset"
run $DB find users --filter '[1]'; expect "filter must be a document" 2
run $DB find nosuch; expect "find on a missing collection" 3; has "missing collection named" err "nosuch"
NEXUSLITE_TEST_SIGINT_AFTER=2 run $DB find users --sort _id --project _id
expect "Ctrl-C during find exits 130 after the rows so far" 130 '{"_id":1}
{"_id":2}'
has "interrupt reported" err "interrupted"
run $DB find users --limit ten; expect "bad --limit" 2
run $DB find users --output xml; expect "bad --output" 2
run $DB find users --frob; expect "unknown option" 2

# ---- count ----
run $DB count users --filter '{city: "Paris"}'; expect "count with filter" 0 "2"
run $DB count nosuch; expect "count missing collection" 3

# ---- update ----
run $DB update users --filter '{city: "Paris"}' --update '{$inc: {age: 1}}'; expect "update many" 0 '{"matched":2,"modified":2}'
run $DB update-one users --filter '{_id: 2}' --update '{$set: {city: "Nice"}}'; expect "update one" 0 '{"matched":1,"modified":1}'
run $DB update-one users --filter '{_id: 9}' --update '{$set: {name: "zoe"}}' --upsert; expect "update-one upsert" 0 '{"matched":0,"modified":0,"upsertedId":9}'
run $DB update users --filter '{}' ; expect "update without --update" 2
run $DB update users --update '{$nope: {a: 1}}'; expect "bad update operator" 2; has "bad update operator named" err '$nope'
run $DB update nosuch --update '{$set: {a: 1}}'; expect "update missing collection" 3
run $DB find users --filter '{_id: {$in: [1, 2, 9]}}' --project age,city,name --sort _id
expect "updates applied" 0 '{"_id":1,"name":"alice","age":31,"city":"Paris"}
{"_id":2,"name":"bob","age":25,"city":"Nice"}
{"_id":9,"name":"zoe"}'

# ---- delete ----
run $DB delete users; expect "delete without a filter needs --confirm" 2; has "confirm explained" err "--confirm"
run $DB delete-one users --filter '{}'; expect "delete-one with an empty filter needs --confirm" 2
run $DB delete-one users --filter '{_id: 9}'; expect "delete-one" 0 '{"deleted":1}'
run $DB delete users --filter '{age: {$gt: 40}}'; expect "delete many" 0 '{"deleted":1}'
run $DB count users; expect "count after deletes" 0 "4"

# ---- collections ----
run $DB collections create scratch; expect "collections create" 0
run $DB collections create scratch; expect "create an existing collection" 1
run $DB collections create 'bad$name'; expect "invalid collection name" 2
run $DB collections; expect "collections list" 0 "scratch
users"
run $DB collections rename scratch temp; expect "collections rename" 0
run $DB collections drop temp; expect "collections drop" 0
run $DB collections drop temp; expect "drop a missing collection" 3
run $DB collections list; expect "list after drop" 0 "users"
run $DB collections explode; expect "bad collections subcommand" 2

# ---- index ----
run $DB index create users age; expect "index create" 0
run $DB index create users '{city: 1, name: -1}' --name city_name; expect "index create compound" 0
run $DB index list users; expect "index list" 0; has "index list names age_1" out '"name":"age_1"'
has "index list names city_name" out '"name":"city_name"'
run $DB index explain users --filter '{age: {$gt: 20}}'; expect "index explain" 0; has "explain shows a plan" out "queryPlanner"
run $DB index drop users city_name; expect "index drop" 0
run $DB index drop users city_name; expect "drop a missing index" 3
run $DB index list nosuch; expect "index list missing collection" 3
run $DB index create users '{age: }'; expect "malformed index keys" 2

# ---- kv ----
run $DB kv set user:1 '{name: "John", langs: ["C"]}'; expect "kv set" 0
run $DB kv set counter 42; expect "kv set number" 0
run $DB kv set greeting hello --string; expect "kv set --string" 0
run $DB kv set bad 'hello world'; expect "kv set non-JSON" 2; has "kv hint" err "--string"
run $DB kv get user:1; expect "kv get" 0; has "kv get value" out '"John"'
run $DB kv get greeting; expect "kv get string" 0 '"hello"'
run $DB kv has counter; expect "kv has" 0 "true"
run $DB kv has nope; expect "kv has missing" 3 "false"
run $DB kv get nope; expect "kv get missing" 3
run $DB kv keys; expect "kv keys" 0 "counter
greeting
user:1"
run $DB kv keys user:; expect "kv keys prefix" 0 "user:1"
run $DB kv delete counter; expect "kv delete" 0
run $DB kv delete counter; expect "kv delete missing" 3
run $DB kv clear; expect "kv clear needs --confirm" 2
run $DB kv clear --confirm; expect "kv clear" 0
run $DB kv keys; expect "kv empty after clear" 0 ""

# ---- info, checkpoint, compact, version ----
run $DB info; expect "info" 0; has "info lists collections" out '"name":"users"'; has "info has page figures" out '"pageSize"'
run $DB checkpoint; expect "checkpoint" 0
run $DB checkpoint --mode sideways; expect "bad checkpoint mode" 2
run $DB compact; expect "compact" 0
run $DB count users; expect "data intact after compact" 0 "4"

# ---- configuration: flags > environment > config file > defaults; secrets masked ----
printf 'db = conf.db\n# a comment\ndurability = normal\nkey = hunter2-in-file\n' >nexuslite.conf
run config; expect "config" 0; has "db from the config file" out "conf.db"; has "source named" out "file nexuslite.conf"
has "key in a config file refused" err "ignored"; hasnt "file secret never printed" out "hunter2"
NEXUSLITE_DB=env.db run config; has "environment beats the file" out "env.db"
NEXUSLITE_DB=env.db run --db flag.db config; has "flag beats the environment" out "flag.db"
NEXUSLITE_KEY=s3cr3t-passphrase run config; hasnt "NEXUSLITE_KEY never printed by config" out "s3cr3t"
has "NEXUSLITE_KEY masked" out "******"
rm nexuslite.conf
mkdir -p xdg/nexuslite && printf 'db = xdg.db\n' >xdg/nexuslite/config
run config; has "XDG config file used" out "xdg.db"
rm -r xdg
# the checkpoint thread (nx_open_opts.checkpoint_thread): a setting like cache_mb, off by default
run config; has "checkpoint_thread listed, off by default" out "checkpoint_thread"
NEXUSLITE_CHECKPOINT_THREAD=true run config; has "checkpoint_thread from the environment" out "environment NEXUSLITE_CHECKPOINT_THREAD"
NEXUSLITE_CHECKPOINT_THREAD=maybe run $DB count users; expect "checkpoint_thread must be a boolean" 2
has "bad checkpoint_thread named" err "checkpoint_thread takes true or false (not 'maybe')"
NEXUSLITE_CHECKPOINT_THREAD=true run $DB insert users '{"_id": 99, "name": "bg"}'; expect "insert with the checkpoint thread" 0
NEXUSLITE_CHECKPOINT_THREAD=true run $DB count users; expect "count with the checkpoint thread" 0 "5"
run $DB delete users '{"_id": 99}'; expect "delete after the checkpoint thread" 0
run $DB info; has "info reports background checkpoints" out '"checkpointsBackground"'
printf 'this line is wrong\n' >broken.conf
run --config broken.conf version; expect "malformed config file" 2; has "config line named" err "broken.conf:1"

# ---- doctor ----
printf 'k' >key.bin; chmod 600 key.bin
NEXUSLITE_KEY=s3cr3t-passphrase NEXUSLITE_KEY_FILE=key.bin run $DB doctor
expect "doctor" 0; has "doctor checks the database file" out "database t.db"; has "doctor checks the log" out "t.db.wasp"
has "doctor reports the lock" out "lock"; has "doctor reports the format" out "format"
hasnt "doctor never prints the key" out "s3cr3t"; has "doctor masks the key" out "******"
run --db missing.db doctor; expect "doctor on a missing database" 3

# ---- locked database: a shell holds it while another process tries ----
mkfifo "$T/to" "$T/from"
"$NX" $DB shell <"$T/to" >"$T/from" 2>&1 &
HOLDER=$!
exec 3>"$T/to" 4<"$T/from"
echo 'db.getName()' >&3
if read -r -t 60 line <&4 && [ "$line" = "t.db" ]; then ok "holder shell is up"; else bad "holder shell did not answer ($line)"; fi
run $DB count users; expect "locked database" 4; has "lock message" err "lock"
run $DB doctor; expect "doctor on a locked database" 4; has "doctor names the lock" out "held by another process"
echo 'exit' >&3
exec 3>&- 4<&-
wait "$HOLDER"; hrc=$?; HOLDER=
[ $hrc -eq 0 ] && ok "holder shell exited cleanly" || bad "holder shell exit status $hrc"
run $DB count users; expect "unlocked again" 0 "4"

# ---- corrupt database file ----
head -c 8192 /dev/urandom >junk.db 2>/dev/null || dd if=/dev/zero of=junk.db bs=4096 count=2 2>/dev/null
printf 'not a database at all, definitely not' | dd of=junk.db conv=notrunc 2>/dev/null
run --db junk.db count users; expect "corrupt database" 5
run --db junk.db doctor; expect "doctor on a corrupt file" 5; has "doctor says it is not a NexusLite file" out "not a NexusLite database"
cp t.db newer.db
printf '\x63' | dd of=newer.db bs=1 seek=32 conv=notrunc 2>/dev/null
printf '\x63' | dd of=newer.db bs=1 seek=$((4096 + 32)) conv=notrunc 2>/dev/null
run --db newer.db doctor; expect "doctor on a newer format" 5; has "doctor names the file's format version" out "version 99"
run --db newer.db count users; expect "a newer format is refused" 5

# ---- import / export (semantics owned by the import/export layer; here: the wiring) ----
printf '%s\n' '{"_id": 100, "sku": "A-1", "price": 9.5}' '{"_id": 101, "sku": "B-2", "price": 20}' >"$T/products.ndjson"
run $DB import "$T/products.ndjson" --collection products; expect "import ndjson" 0; has "import summary" err "imported 2"
run $DB count products; expect "imported documents are there" 0 "2"
printf 'sku,price\nC-3,5\nD-4,7.25\n' >"$T/more.csv"
run $DB import "$T/more.csv" --collection products --format csv; expect "import csv" 0
run $DB count products; expect "csv rows imported" 0 "4"
run $DB import "$T/nope.ndjson" --collection products; expect "import a missing file" 3
run $DB import "$T/products.ndjson"; expect "import without --collection" 2
run $DB export products "$T/out.ndjson" --filter '{price: {$gt: 8}}'; expect "export ndjson" 0
[ "$(wc -l <"$T/out.ndjson")" -eq 2 ] && ok "export wrote the matching documents" || bad "export line count"
run $DB export products "$T/out.ndjson"; expect "export refuses to overwrite" 1
run $DB export products "$T/out.ndjson" --force; expect "export --force" 0
run $DB export nosuch "$T/x.ndjson"; expect "export a missing collection" 3

# ---- durability from the flag and from the environment ----
run --db dur.db --durability off insert d '{_id: 1}'; expect "insert with --durability off" 0
NEXUSLITE_DURABILITY=normal run --db dur.db insert d '{_id: 2}'; expect "insert with NEXUSLITE_DURABILITY=normal" 0
run --db dur.db count d; expect "both commits are there after reopening" 0 "2"

# ---- colour only when asked or on a terminal ----
run $DB --color always find users --limit 1 --output table; expect "--color always" 0
has "colour codes with --color always" out $'\033['
run $DB find users --limit 1 --output table; hasnt "no colour off a terminal" out $'\033['

# ---- kv value from stdin ----
printf '{"big": [1, 2, 3]}' >"$T/value.json"
IN="$T/value.json" run $DB kv set from-stdin -; expect "kv set from stdin" 0
run $DB kv get from-stdin; has "kv value read from stdin" out "big"

# ---- the demo: builds demo.db and, without a terminal, runs its examples and exits ----
mkdir demo && (cd demo && bash "$SRC/scripts/demo" "$BUILD" </dev/null >"$T/demo.out" 2>&1)
drc=$?
[ $drc -eq 0 ] && ok "scripts/demo exits 0 without a terminal" || { bad "scripts/demo exit $drc"; tail -5 "$T/demo.out"; }
grep -q "Three things to try" "$T/demo.out" && ok "demo prints the commands to try" || bad "demo text"
grep -q "Decimal128(" "$T/demo.out" && ok "demo ran an example query" || bad "demo example output"
run --db demo/demo.db count orders; expect "demo database has orders" 0 "500"
run --db demo/demo.db index list users; has "demo indexes exist" out "age_1"
# a demo.db this build cannot open (an earlier format, damage) is set aside and made again
mkdir demo2 && head -c 8192 /dev/urandom >demo2/demo.db
(cd demo2 && bash "$SRC/scripts/demo" "$BUILD" </dev/null >"$T/demo2.out" 2>&1)
drc=$?
[ $drc -eq 0 ] && ok "scripts/demo recreates an unreadable demo.db" || { bad "scripts/demo over junk: exit $drc"; tail -5 "$T/demo2.out"; }
ls demo2/demo.db.unreadable-* >/dev/null 2>&1 && ok "the unreadable demo.db is kept aside" || bad "no demo.db.unreadable-*"
grep -q "cannot be opened by this build" "$T/demo2.out" && ok "demo says why it set the file aside" || bad "demo2 message"
run --db demo2/demo.db count orders; expect "recreated demo database has orders" 0 "500"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
