"""Time the fused LIF kernel's launch configurations on the GPU at hand (one JSON line each).

    python tools/tune_lif_kernel.py            # [T=32, B=128, N=4096] float32, loss = sum of spikes
"""

import itertools
import json
import statistics
import sys

import torch

from snnrun.kernels import lif_multistep as K


def time_ms(fn, reps=20, inner=10):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(inner):
            fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b) / inner)
    return statistics.median(out)


def main():
    T, B, N = (int(v) for v in (sys.argv[1:4] if len(sys.argv) > 3 else (32, 128, 4096)))
    x = (1.5 * torch.rand(T, B, N, device="cuda")).requires_grad_()
    ref_s, _ = K.lif_multistep(x, backend="torch")
    (ref_g,) = torch.autograd.grad(ref_s.sum(), x)
    rows = []
    for block, warps, chunk in itertools.product((128, 256, 512, 1024), (1, 2, 4), (1, 4, 8, 16)):
        K.LAUNCH.update(BLOCK=block, num_warps=warps, CHUNK=chunk)
        try:
            s, _ = K.lif_multistep(x)
            (g,) = torch.autograd.grad(s.sum(), x)
            ok = torch.equal(s, ref_s) and float((g - ref_g).norm() / ref_g.norm()) < 1e-6

            def fb():
                s, _ = K.lif_multistep(x)
                return torch.autograd.grad(s.sum(), x)

            def f():
                with torch.no_grad():
                    return K.lif_multistep(x)

            r = {"BLOCK": block, "num_warps": warps, "CHUNK": chunk, "ok": ok,
                 "fwd_bwd_ms": round(time_ms(fb), 4), "fwd_ms": round(time_ms(f), 4)}
        except Exception as e:  # a configuration the compiler rejects
            r = {"BLOCK": block, "num_warps": warps, "CHUNK": chunk, "error": str(e)[:100]}
        rows.append(r)
        print(json.dumps(r), flush=True)
    best = min((r for r in rows if r.get("ok")), key=lambda r: r["fwd_bwd_ms"])
    print("best", json.dumps(best))


if __name__ == "__main__":
    main()
