#!/usr/bin/env bash
# A training run longer than one device call (10 minutes), continued across calls on a machine
# that stays warm between them (its /tmp is kept): each call trains until SECONDS have passed,
# then SIGTERM makes snnrun write a checkpoint and stop; the next call resumes it (resume=true).
#   bash tools/gpu/long_run.sh NAME SECONDS snnrun-train-overrides...
# e.g.  bash tools/gpu/long_run.sh plif_s0 540 experiment=plif_mnist seed=0 trainer.epochs=210 \
#         data.root=.data/mnist device=cuda logger=plain
# The run dir is /tmp/long/NAME; when the run has finished, its summary.json is copied to
# $OUT/NAME_summary.json and its metrics.jsonl to $OUT/NAME_metrics.jsonl (where OUT is set), and
# the command prints the summary's accuracy figures.
source tools/gpu/setup.sh || exit 1
name=$1; secs=$2; shift 2
dir=/tmp/long/$name
again=false
[ -f "$dir/checkpoint.pt" ] && again=true
timeout -s TERM "$secs" snnrun train "$@" resume=$again hydra.run.dir="$dir" 2>&1 | grep -E "^epoch|done in|resum|rror" | tail -25
if [ -f "$dir/summary.json" ]; then
  [ -n "${OUT:-}" ] && cp "$dir/summary.json" "$OUT/${name}_summary.json" && cp "$dir/metrics.jsonl" "$OUT/${name}_metrics.jsonl"
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print({k: s.get(k) for k in ('test_accuracy', 'best_epoch', 'best_epoch_test_accuracy', 'wall_s', 'train_steady_images_per_s')})" "$dir/summary.json"
else
  echo "$name: not finished; call again to resume from $dir/checkpoint.pt"
fi
