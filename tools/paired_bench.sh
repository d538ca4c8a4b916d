#!/usr/bin/env bash
# Paired before/after `snnrun bench` on one machine in one call: BEFORE is a checkout of an older
# snnrun (e.g. `git archive <commit> | tar -x -C .before`), the working tree is "after".
# Usage: tools/paired_bench.sh BEFORE_DIR ROUNDS [bench overrides ...]
set -uo pipefail
before=$1; rounds=$2; shift 2
for r in $(seq 1 "$rounds"); do
  for side in before after; do
    dir=$([ "$side" = before ] && echo "$before" || echo .)
    echo "== round $r $side"
    PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}" python3 -m snnrun bench "$@" | grep '^{' | sed "s/^/$side /"
  done
done
