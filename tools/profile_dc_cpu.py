"""Where a CPU step of Diehl & Cook training goes (1 torch thread, T = 250, MNIST size).

    python tools/profile_dc_cpu.py                 # the C loop: CPU time per batch, split into the
                                                   # loop, torch's generator, and the rest
    python tools/profile_dc_cpu.py eager [n] [b]   # the step-by-step path: torch.profiler's op table

CPU time (time.process_time) rather than wall time, so that other jobs on the machine matter less.
"""

import sys
import time

import torch

from snnrun.commands.bench import _dc_experiment


def loop_breakdown(points=((100, 1), (100, 16), (400, 1), (400, 16))):
    spent = {"loop": 0.0, "rand": 0.0}
    rand = torch.rand

    def timed_rand(*a, **k):
        c0 = time.process_time()
        out = rand(*a, **k)
        spent["rand"] += time.process_time() - c0
        return out

    class TimedLib:
        def __init__(self, lib):
            self.lib = lib

        def dc_run(self, args):
            c0 = time.process_time()
            out = self.lib.dc_run(args)
            spent["loop"] += time.process_time() - c0
            return out

    for n, b in points:
        exp, x = _dc_experiment(n, b, 250.0, 1.0, "cpu_loop", "cpu")
        exp.network.train()
        exp.network.cpu_loop.lib = TimedLib(exp.network.cpu_loop.lib)
        exp.simulate(x)
        spent.update(loop=0.0, rand=0.0)
        k = 20 if b == 1 else 5
        torch.rand = timed_rand  # the encoder and the one-spike keys call torch.rand
        try:
            c0 = time.process_time()
            for _ in range(k):
                exp.simulate(x)
            total = (time.process_time() - c0) / k
        finally:
            torch.rand = rand
        loop, gen = spent["loop"] / k, spent["rand"] / k
        print(f"n={n} batch={b}: {total * 1e3:.2f} ms CPU per batch ({b / total:.0f} images per CPU-second): "
              f"C loop {loop * 1e3:.2f}, torch.rand (encoding + one-spike keys) {gen * 1e3:.2f}, "
              f"rest {(total - loop - gen) * 1e3:.2f}")


def eager_ops(n: int, b: int):
    from torch.profiler import ProfilerActivity, profile

    exp, x = _dc_experiment(n, b, 250.0, 1.0, "eager", "cpu")
    exp.network.train()
    exp.simulate(x)
    c0 = time.process_time()
    exp.simulate(x)
    step = (time.process_time() - c0) / exp.encoder.steps
    print(f"n={n} batch={b} eager: {step * 1e6:.0f} us CPU per step")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        exp.simulate(x)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=40))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if len(sys.argv) > 1 and sys.argv[1] == "eager":
        eager_ops(int(sys.argv[2]) if len(sys.argv) > 2 else 100, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    else:
        loop_breakdown()
