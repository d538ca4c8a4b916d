#!/usr/bin/env bash
# csnn training images/s on 1 vs N processes with the same per-process batch (torchrun, DDP).
#   tools/ddp_bench.sh                 # 2 GPUs, nccl (default)
#   NPROC=2 DEVICE=cpu tools/ddp_bench.sh   # the same on CPU with gloo (a correctness check, not a speed test)
# Env: NPROC (2), PER_GPU_BATCH (128), N_TRAIN (20000), EPOCHS (2), DEVICE (auto), OUT (/tmp/ddp_bench),
#      EXTRA (more overrides for both runs, e.g. trainer.sync_batchnorm=false).
# The number reported is the images/s of the last epoch (the first includes cuDNN autotuning).
set -euo pipefail
NPROC=${NPROC:-2}; B=${PER_GPU_BATCH:-128}; N=${N_TRAIN:-20000}; EPOCHS=${EPOCHS:-2}
DEVICE=${DEVICE:-auto}; OUT=${OUT:-/tmp/ddp_bench}
PY=${PYTHON:-python}
rm -rf "$OUT"; mkdir -p "$OUT"
common=(+model=csnn data=synthetic "data.shape=[1,28,28]" data.n_train=$N data.n_test=1000
        trainer.epochs=$EPOCHS trainer.eval_batch_size=512 model.learner.val_fraction=0.02
        logger=plain logger.progress=false device=$DEVICE trainer.strategy=ddp ${EXTRA:-})
run() {  # run NPROC_RUN DIR
  $PY -m torch.distributed.run --standalone --nproc_per_node=$1 -m snnrun train "${common[@]}" \
    trainer.batch_size=$(( B * $1 )) hydra.run.dir="$OUT/$2" > "$OUT/$2.log" 2>&1 \
    || { tail -30 "$OUT/$2.log"; exit 1; }
  $PY - "$OUT/$2/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"phase": "train"' in l]
print(rows[-1]["images_per_s"])
PY
}
one=$(run 1 p1); many=$(run "$NPROC" p$NPROC)
echo "csnn 28x28, per-process batch $B, $N train images, device $DEVICE"
echo "1 process:  $one images/s"
echo "$NPROC processes: $many images/s"
$PY -c "print(f'speed-up: {$many / $one:.2f}x (target >= 1.8x on 2 GPUs)')"
