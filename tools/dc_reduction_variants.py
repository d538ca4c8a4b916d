"""Time ways of computing the two per-step reductions of Diehl & Cook's batched step on the GPU.

At 6400 neurons and batch 256, two reductions of the compiled step take ~24 us of its ~98 us
(README, "Whole runs"):

- the one-spike choice (DiehlCookNodes): per sample, the crossing neuron with the largest random
  key wins; an argmax over the N neurons of each of the B rows (B programs of N elements each:
  few programs for the GPU's SMs), fused with the keys' 64-bit hash;
- the owner claim (PostPreSTDP, reduction: owner): per neuron, the first sample that fires it;
  an argmax over the B samples of each of the N columns.

Each variant is compiled (torch.compile, as the engine compiles the step), checked to give the
same indices as the plain argmax, and timed in a CUDA graph (GPU time only)::

    python tools/dc_reduction_variants.py [n] [batch]      # defaults 6400 256
"""

import sys

import torch

from snnrun.commands.bench import graph_us
from snnrun.engine.random_keys import counter_uniform


def split_argmax(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """argmax over the last dim in two stages (chunks of ``chunk``, then over the chunks); the same
    index as ``x.argmax(-1)``, ties included (the first maximum in each stage)."""
    *lead, n = x.shape
    pad = (-n) % chunk
    if pad:
        x = torch.nn.functional.pad(x, (0, pad), value=float("-inf"))
    parts = x.view(*lead, -1, chunk)
    best, at = parts.max(-1)
    which = best.argmax(-1, keepdim=True)
    return which.squeeze(-1) * chunk + at.gather(-1, which).squeeze(-1)


def main():
    n, b = (int(v) for v in (sys.argv[1:3] if len(sys.argv) > 2 else (6400, 256)))
    dev = "cuda"
    g = torch.Generator(dev).manual_seed(0)
    crossing = (torch.rand(b, n, device=dev, generator=g) < 2e-4).float()  # a few per step, as in D&C
    draw = torch.zeros((), dtype=torch.int64, device=dev)

    def keys():
        return counter_uniform((b, n), draw, 1234).masked_fill(crossing == 0, -1.0)

    one_spike = {"argmax over neurons": lambda: keys().argmax(1)}
    for c in (64, 128, 256, 512):
        one_spike[f"split argmax, chunks of {c}"] = lambda c=c: split_argmax(keys(), c)
    fired = (torch.rand(b, n, device=dev, generator=g) < 0.01).float()
    claim = {"argmax over samples": lambda: fired.argmax(0),
             "argmax of the transpose": lambda: fired.t().contiguous().argmax(1)}
    for c in (16, 32, 64):
        claim[f"split argmax over samples, chunks of {c}"] = lambda c=c: split_argmax(fired.t(), c)
    for title, variants in (("one-spike choice", one_spike), ("owner claim", claim)):
        print(f"{title} [B={b}, N={n}]")
        ref = None
        for name, fn in variants.items():
            compiled = torch.compile(fn)
            out = compiled()
            ref = out if ref is None else ref
            same = bool(torch.equal(out, ref))
            us = graph_us(compiled, reps=50, inner=20, warmup=3)
            print(f"  {name:42s} {us:8.2f} us  same indices: {same}")


if __name__ == "__main__":
    main()
