"""LIF layer forward+backward side by side with SpikingJelly, round by round in one process (issue 16).

Each round times, one after the other on the same GPU, a multi-step LIF layer [T, B, N] (tau 2,
decay_input, hard reset to 0, threshold 1, sigmoid surrogate alpha 4; input 1.5 U(0, 1); loss = the
sum of the spikes, gradient to the input):

  snnrun        `snnrun bench workload=lif_fwd_bwd` (the fused Triton kernel), eager: one Python call,
                autograd and the kernel launches per layer call
  snnrun graph  the same with `workload.graphs=true`: each call's forward and backward replayed as one
                CUDA graph, as the layer runs inside snnrun's captured training step
  SpikingJelly  LIFNode(step_mode="m") with SJ_LIF_CUDA_IMPLEMENTATION (default triton), reset_net
                before each call, as peer-bench/peers/bench_lif.py
  SJ graph      SpikingJelly's call captured and replayed the same way (the fair pair for snnrun graph)

Each figure: ms per call, the median of --repeats timings of --inner calls after --warmup. Per round
it prints the four figures and the ratios SpikingJelly / snnrun (eager / eager, eager / graph,
graph / graph); at the end each ratio's min, median and max over the rounds, and the hardware.

GPU machine (repository root, wheels in .whl/ and .whl/peers/):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:. python3 tools/peer_lif.py --rounds 6 --site /tmp/sj_site --wheels .whl/peers

CPU check (SpikingJelly's torch implementation; no graphs): --device cpu --T 8 --B 8 --N 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peer_csnn import ensure_site, hardware  # noqa: E402  (tools/ is not a package)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--T", type=int, default=32)
    p.add_argument("--B", type=int, default=128)
    p.add_argument("--N", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--inner", type=int, default=10, help="calls per timing")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--sj-impl", default="triton", help="SJ_LIF_CUDA_IMPLEMENTATION: triton, torch, auto")
    p.add_argument("--site", default="/tmp/sj_site", help="where spikingjelly is (installed from --wheels if not)")
    p.add_argument("--wheels", default=".whl/peers")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--out", default=None, help="write the rounds as JSON lines to this file")
    return p.parse_args(argv)


def spikingjelly_call(args, x):
    """SpikingJelly's forward+backward of one layer call on ``x``, and its version."""
    os.environ["SJ_LIF_CUDA_IMPLEMENTATION"] = args.sj_impl  # read when its ops load
    sys.path.insert(0, os.path.abspath(args.site))
    import importlib.metadata as md

    import torch
    from loguru import logger
    logger.remove()  # its backend-selection messages
    from spikingjelly.activation_based import functional, neuron, surrogate

    node = neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.Sigmoid(alpha=4.0), detach_reset=False,
                          step_mode="m").to(x.device)

    def call():
        functional.reset_net(node)
        return torch.autograd.grad(node(x).sum(), [x])

    return call, md.version("spikingjelly")


def ms_per_call(fn, device, args) -> float:
    from snnrun.commands.bench import seconds_per_call

    return seconds_per_call(fn, device, args.warmup, args.repeats, args.inner) * 1e3


def main(argv=None):
    args = parse(argv)
    ensure_site(args)
    import torch

    from snnrun.commands.bench import LIFForwardBackward
    from snnrun.engine.cuda_graph import capture

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    g = torch.Generator(device=device).manual_seed(0)
    x = (1.5 * torch.rand(args.T, args.B, args.N, device=device, generator=g)).requires_grad_(True)
    sj, sj_version = spikingjelly_call(args, x)
    sj_graph = None
    if cuda:
        try:
            sj_graph = capture(sj, warmup=args.warmup).replay
        except RuntimeError as e:  # a kernel that cannot be captured: report it, time the rest
            print(f"SpikingJelly's call could not be captured: {e}", flush=True)

    def snnrun_ms(graphs: bool) -> float:
        r = LIFForwardBackward(args.T, args.B, args.N, graphs=graphs).run(device, args.warmup, args.repeats)
        return r["fwd_bwd_ms"]

    names = ("snnrun", "snnrun graph", "SpikingJelly", "SJ graph")
    rows = []
    print(f"LIF fwd+bwd [T={args.T}, B={args.B}, N={args.N}], ms per call; SpikingJelly {sj_version} "
          f"({args.sj_impl}); {hardware(args.device)}, torch {torch.__version__}", flush=True)
    print("round  " + "  ".join(f"{n:>13}" for n in names) + "   SJ/snnrun  SJ/graph  SJgraph/graph")
    for r in range(args.rounds):
        ms = {"snnrun": snnrun_ms(False), "SpikingJelly": ms_per_call(sj, device, args)}
        if cuda:
            ms["snnrun graph"] = snnrun_ms(True)
            if sj_graph is not None:
                ms["SJ graph"] = ms_per_call(sj_graph, device, args)
        ratio = {"eager/eager": ms["SpikingJelly"] / ms["snnrun"]}
        if cuda:
            ratio["eager/graph"] = ms["SpikingJelly"] / ms["snnrun graph"]
            if sj_graph is not None:
                ratio["graph/graph"] = ms["SJ graph"] / ms["snnrun graph"]
        rows.append({"round": r, "ms": ms, "ratio": ratio})
        print(f"{r:>5}  " + "  ".join(f"{ms[n]:>13.4f}" if n in ms else f"{'-':>13}" for n in names) + "  "
              + "  ".join(f"{ratio[k]:>9.2f}x" for k in ratio), flush=True)
    print("ratio over the rounds (min / median / max):")
    for k in rows[0]["ratio"]:
        v = [row["ratio"][k] for row in rows]
        print(f"  {k:<12} {min(v):.2f}x / {statistics.median(v):.2f}x / {max(v):.2f}x")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(row) + "\n" for row in rows))


if __name__ == "__main__":
    main()
