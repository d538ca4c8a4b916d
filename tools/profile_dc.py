"""Kernel-time breakdown of Diehl & Cook training steps on the GPU (torch.profiler).

    python tools/profile_dc.py [n] [batch] [engine] [matmul]      # defaults 400 256 compiled fp32
"""

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from snnrun.commands.bench import _dc_experiment


def main():
    n, batch = int(sys.argv[1]) if len(sys.argv) > 1 else 400, int(sys.argv[2]) if len(sys.argv) > 2 else 256
    engine = sys.argv[3] if len(sys.argv) > 3 else "compiled"
    matmul = sys.argv[4] if len(sys.argv) > 4 else "fp32"
    exp, x = _dc_experiment(n, batch, 20.0, 1.0, engine, "cuda", matmul)
    exp.network.train()
    for _ in range(3):
        exp.simulate(x)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            exp.simulate(x)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))


if __name__ == "__main__":
    main()
