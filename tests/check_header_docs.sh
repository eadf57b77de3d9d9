#!/usr/bin/env bash
# Every public function in include/nexuslite.h has a doc comment right above it, and the comment
# shows a short example (the word "Example"), as the engineering standards ask.
set -u
hdr="${2:-$(cd "$(dirname "$0")/.." && pwd)}/include/nexuslite.h"
awk '
  /\/\*\*/ { inblk = 1; blk = "" }
  inblk { blk = blk $0 "\n" }
  /\*\// { if (inblk) { inblk = 0; done = NR } }
  /^NX_API/ && /\(/ {
    n++
    name = $0; sub(/\(.*/, "", name); sub(/.* \**/, "", name)
    if (done != NR - 1) { print "no doc comment right above " name " (line " NR ")"; bad++ }
    else if (blk !~ /Example/) { print "no example in the doc comment of " name " (line " NR ")"; bad++ }
  }
  END {
    if (n < 40) { print "only " n " public functions found: is the header where this script looks?"; exit 1 }
    if (bad) exit 1
    print n " public functions, each documented with an example"
  }' "$hdr"
