"""Time the fused LIF kernels' launch configurations on the GPU at hand (one JSON line each).

    python tools/tune_lif_kernel.py [T B N]      # default [32, 128, 4096] float32

Each configuration's forward (with checkpoints) and backward kernel (scalar spike gradient, as
for loss = spikes.sum()) are captured in a CUDA graph and replayed, so the figures are GPU time
alone: at this size an eager call is bound by host overhead, which would hide the differences.
Results are checked against the PyTorch reference path first.
"""

import itertools
import json
import sys

import torch
import triton

from snnrun.commands.bench import graph_us
from snnrun.engine.kernels import lif_multistep as K


def main():
    T, B, N = (int(v) for v in (sys.argv[1:4] if len(sys.argv) > 3 else (32, 128, 4096)))
    x = (1.5 * torch.rand(T, B, N, device="cuda")).requires_grad_()
    ref_s, _ = K.lif_multistep(x, backend="torch")
    (ref_g,) = torch.autograd.grad(ref_s.sum(), x)
    xd, n = x.detach(), B * N
    one = torch.ones(1, device="cuda")
    rows = []
    for block, warps, chunk in itertools.product((128, 256, 512, 1024), (1, 2, 4), (4, 8, 16)):
        K.LAUNCH.update(BLOCK=block, num_warps=warps, CHUNK=chunk)
        r = {"BLOCK": block, "num_warps": warps, "CHUNK": chunk}
        try:
            s, _ = K.lif_multistep(x)
            (g,) = torch.autograd.grad(s.sum(), x)
            r["ok"] = torch.equal(s, ref_s) and float((g - ref_g).norm() / ref_g.norm()) < 1e-6
            s_seq, vT, gx = torch.empty_like(xd), torch.empty_like(xd[0]), torch.empty_like(xd)
            ckpt = torch.empty(triton.cdiv(T, chunk), B, N, device="cuda")
            grid = (triton.cdiv(n, block),)

            def fwd():
                K._lif_fwd_kernel[grid](xd, vT, s_seq, ckpt, vT, T, n, 0.5, 1.0, 0.0, 0.0, MODE=1, SOFT=False,
                                        STORE_CKPT=True, V0_SCALAR=True, **K.LAUNCH)

            def bwd():
                K._lif_bwd_kernel[grid](one, vT, xd, ckpt, gx, gx, T, n, 0.5, 0.5, 0.5, 1.0, 0.0, 4.0, MODE=1,
                                        SOFT=False, DETACH=False, ATAN=False, GS_SCALAR=True, GV_ZERO=True,
                                        STORE_GV0=False, **K.LAUNCH)

            r["fwd_us"], r["bwd_us"] = round(graph_us(fwd), 2), round(graph_us(bwd), 2)
            r["total_us"] = round(r["fwd_us"] + r["bwd_us"], 2)
        except Exception as e:  # a configuration the compiler rejects
            r["error"] = str(e)[:100]
        rows.append(r)
        print(json.dumps(r), flush=True)
    ok = [r for r in rows if r.get("ok")]
    best = min(ok, key=lambda r: r["total_us"])
    print("best", json.dumps(best))
    print("best fwd", json.dumps(min(ok, key=lambda r: r["fwd_us"])))
    print("best bwd", json.dumps(min(ok, key=lambda r: r["bwd_us"])))


if __name__ == "__main__":
    main()
