#!/usr/bin/env bash
# Checks the layering rule of DESIGN.md section 1 by text: no file in src/<layer>/ includes a
# header that lives in a layer above it. (The CMake include paths enforce the same physically.)
set -u
src="${2:-$(cd "$(dirname "$0")/.." && pwd)}/src"
# Each layer and the layers it may include (itself and below).
declare -A allowed=(
  [base]="base" [os]="os base" [crypto]="crypto os base" [storage]="storage crypto os base"
  [doc]="doc base" [match]="match doc base" [index]="index match doc storage crypto os base"
  [engine]="engine index match doc storage crypto os base"
  [query]="query engine index match doc storage crypto os base"
  [cache]="cache query engine index match doc storage crypto os base"
  [io]="io cache query engine index match doc storage crypto os base"
  [backup]="backup io cache query engine index match doc storage crypto os base"
  [api]="api backup io cache query engine index match doc storage crypto os base"
)
# Map every header name to its layer.
declare -A owner=()
for d in "$src"/*/; do
  l=$(basename "$d")
  for h in "$d"*.h; do [ -e "$h" ] && owner[$(basename "$h")]=$l; done
done
bad=0
while IFS=: read -r f inc; do
  l=$(basename "$(dirname "$f")")
  inc=${inc##*/}
  o=${owner[$inc]:-}
  [ -z "$o" ] && continue
  case " ${allowed[$l]:-} " in *" $o "*) ;; *) echo "layering: $f includes $inc from layer '$o' above '$l'"; bad=1;; esac
done < <(grep -oE '^#include "[^"]+"' "$src"/*/*.[ch] | sed -E 's/:#include "(.*)"$/:\1/')
if [ $bad -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $bad
