#!/usr/bin/env bash
# Paired before/after speed of whole `snnrun train` runs on one machine in one call: BEFORE is a
# checkout of an older snnrun (`git archive <commit> | tar -x -C .before`), the working tree is "after".
# Usage: tools/paired_train.sh BEFORE_DIR ROUNDS [train overrides ...]
#   (SIDES=after: the working tree only; LOGGER=rich: the console logger, default plain)
# Prints one line per run: side, training images/s (summary.json), label-pass and test images/s,
# seconds from the command's start to the first metrics line (after the first training batch),
# wall_s (summary.json), whole-process seconds and test_accuracy.
set -uo pipefail
before=$1; rounds=$2; shift 2
out=${TMPDIR:-/tmp}/paired_train.$$
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for side in ${SIDES:-before after}; do
    dir=$([ "$side" = before ] && echo "$before" || echo .)
    run="$out/$side-$r"
    t0=$(date +%s.%N)
    PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}" python3 -m snnrun train "logger=${LOGGER:-plain}" "hydra.run.dir=$run" "$@" \
      > "$run.log" 2>&1 || { echo "$side $r FAILED"; tail -5 "$run.log"; continue; }
    t1=$(date +%s.%N)
    python3 - "$run" "$side" "$t0" "$t1" <<'PY'
import json, sys
run, side, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
s = json.load(open(f"{run}/summary.json"))
recs = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
first = next(r["time"] for r in recs if r["phase"] == "train")
assign = next((r["images_per_s"] for r in recs if r["phase"] == "assign"), None)
steady = ""
if "train_steady_images_per_s" in s:  # this version separates the one-off compile and capture
    a = next(r for r in recs if r["phase"] == "assign") if assign is not None else {}
    steady = (f" | without compile: train {s['train_steady_images_per_s']:.0f} ({s['train_compile_s']:.1f} s),"
              f" assign {a.get('steady_images_per_s')} ({a.get('compile_s')} s),"
              f" test {s['test_steady_images_per_s']:.0f} ({s['test_compile_s']:.1f} s)")
print(side, f"train {s['train_images_per_s']:.0f} img/s", f"assign {assign} img/s",
      f"test {s['test_images_per_s']:.0f} img/s", f"first_batch {first - t0:.1f} s",
      f"wall_s {s['wall_s']:.1f}", f"process {t1 - t0:.1f} s", f"acc {s['test_accuracy']:.4f}" + steady, flush=True)
PY
  done
done
