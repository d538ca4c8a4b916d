#!/usr/bin/env bash
# Diehl & Cook training on this CPU: BindsNET 0.3.4 and `snnrun bench workload=dc_train`, run
# alternately in ONE call (a busy machine slows both alike, so the ratios of a pair hold).
#   tools/cpu_paired.sh [ROUNDS] [POINTS] [THREADS]
#     ROUNDS   rounds of all points (default 2)
#     POINTS   n:batch pairs (default "100:1 400:1 100:16 400:16")
#     THREADS  torch threads on both sides (default 2)
# BindsNET runs from ../shared/peer-bench (bench_bindsnet_dc.py, STDP on, 250 steps, no monitors)
# in the venv /tmp/benchvenv (torch==2.13.0) with bindsnet on PYTHONPATH=/tmp/site_cpu; both are
# built here when absent (PyPI; bindsnet with --no-deps, as the peer-bench README says; it imports
# cv2, skimage and h5py at import time).
# BindsNET's images/s leaves out its Poisson encoding (timed apart: "+enc" column); snnrun's
# includes it. Printed: every measurement, then per point the median over rounds and the ratio.
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
POINTS=${2:-"100:1 400:1 100:16 400:16"}
THREADS=${3:-2}
PEER=${PEER:-../shared/peer-bench}
BPY=${BENCH_PY:-/tmp/benchvenv/bin/python}
SITE=${BENCH_SITE:-/tmp/site_cpu}
PY=${PYTHON:-python3}
OUT=$(mktemp -d)

[ -f "$PEER/peers/bench_bindsnet_dc.py" ] || { echo "no $PEER/peers/bench_bindsnet_dc.py"; exit 2; }
if [ ! -x "$BPY" ]; then
  echo "== building /tmp/benchvenv (torch==2.13.0 and the plain dependencies of bindsnet)"
  python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install -q torch==2.13.0 numpy scipy \
    matplotlib pandas scikit-learn tqdm opencv-python-headless scikit-image h5py || exit 2
fi
if [ ! -d "$SITE/bindsnet" ]; then
  echo "== installing bindsnet==0.3.4 (--no-deps) into $SITE"
  "$BPY" -m pip install -q --no-deps --target "$SITE" bindsnet==0.3.4 || exit 2
fi

for r in $(seq 1 "$ROUNDS"); do
  for p in $POINTS; do
    n=${p%%:*}; b=${p##*:}
    echo "== round $r n=$n batch=$b: bindsnet"
    PYTHONPATH="$SITE" nice -n 0 "$BPY" "$PEER/peers/bench_bindsnet_dc.py" --device cpu --threads "$THREADS" \
      --n-neurons "$n" --batch-sizes "$b" --cap-s 20 --repeat-s 2 2>/dev/null \
      | grep '^{' | sed "s/^/bindsnet $r /" | tee -a "$OUT/all.txt" | cut -c1-160
    echo "== round $r n=$n batch=$b: snnrun"
    OMP_NUM_THREADS=$THREADS "$PY" -m snnrun bench workload=dc_train device=cpu workload.n="$n" \
      workload.batch="$b" repeats=5 warmup=1 2>/dev/null \
      | grep '^{' | sed "s/^/snnrun $r /" | tee -a "$OUT/all.txt" | cut -c1-160
  done
done

"$PY" - "$OUT/all.txt" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    side, rnd, rec = line.split(" ", 2)
    r = json.loads(rec)
    if side == "bindsnet":
        key, ips, enc = (r["n_neurons"], r["batch_size"]), r.get("images_per_s"), r.get("images_per_s_with_encode")
    else:
        key, ips, enc = (r["params"]["n"], r["params"]["batch"]), r["images_per_s"], r["images_per_s"]
    rows.setdefault(key, {}).setdefault(side, {})[int(rnd)] = (ips, enc, r.get("engine_used", ""))
print("\nimages/s (D&C training, STDP on, T=250); ratio = snnrun / BindsNET per round, then median")
print(f"{'n':>5} {'batch':>5} | {'BindsNET':>9} {'+enc':>8} | {'snnrun':>9} | ratio per round -> median (vs +enc)")
for (n, b), sides in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    bn, sn = sides.get("bindsnet", {}), sides.get("snnrun", {})
    pairs = [(sn[k][0] / bn[k][0], sn[k][0] / bn[k][1]) for k in sorted(bn) if k in sn and bn[k][0] and sn[k][0]]
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    engine = next(iter(sn.values()))[2] if sn else ""
    print(f"{n:>5} {b:>5} | {med([v[0] for v in bn.values() if v[0]]):>9.1f} {med([v[1] for v in bn.values() if v[1]]):>8.1f} | "
          f"{med([v[0] for v in sn.values()]):>9.1f} | " + ", ".join(f"{p[0]:.1f}x" for p in pairs)
          + f" -> {med([p[0] for p in pairs]):.1f}x ({med([p[1] for p in pairs]):.1f}x)  [{engine}]")
    print(" " * 14 + "per round: BindsNET " + " / ".join(f"{bn[k][0]}" for k in sorted(bn))
          + ", snnrun " + " / ".join(f"{sn[k][0]}" for k in sorted(sn)))
EOF
echo "raw JSON lines: $OUT/all.txt"
