#!/usr/bin/env bash
# Paired before/after accuracy of `snnrun train` on one machine in one call: BEFORE is a checkout of
# an older snnrun (`git archive <commit> | tar -x -C .before`), the working tree is "after".
# Usage: tools/paired_accuracy.sh BEFORE_DIR "MODELS" "SEEDS" [train overrides ...]
# Prints one line per run: side model seed test_accuracy wall_s.
set -uo pipefail
before=$1; models=$2; seeds=$3; shift 3
out=${TMPDIR:-/tmp}/paired_accuracy.$$
mkdir -p "$out"
for m in $models; do
  for s in $seeds; do
    for side in before after; do
      dir=$([ "$side" = before ] && echo "$before" || echo .)
      run="$out/$side-$m-$s"
      PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}" python3 -m snnrun train "+model=$m" "seed=$s" logger=plain \
        "hydra.run.dir=$run" "$@" > "$run.log" 2>&1 || { echo "$side $m $s FAILED"; tail -5 "$run.log"; continue; }
      python3 -c "import json; d=json.load(open('$run/summary.json')); print('$side', '$m', $s, round(d['test_accuracy'], 4), round(d['wall_s'], 1))"
    done
  done
done
