"""Time ways of applying one PostPre STDP step to a dense (n_in x n_out) weight matrix on the GPU.

    python tools/stdp_gemm_variants.py [n_in] [n_out] [batch]
"""

import sys

import torch

from snnrun.commands.bench import graph_us


def main():
    n_in, n_out, B = (int(v) for v in (sys.argv[1:4] if len(sys.argv) > 3 else (784, 400, 256)))
    dev = "cuda"
    s_pre = (torch.rand(B, n_in, device=dev) < 0.03).float()
    x_pre = torch.rand(B, n_in, device=dev)
    s_post = torch.zeros(B, n_out, device=dev)
    s_post[torch.arange(B), torch.randint(0, n_out, (B,))] = (torch.rand(B, device=dev) < 0.3).float()
    x_post = torch.rand(B, n_out, device=dev) * (torch.rand(B, n_out, device=dev) < 0.1)
    w = torch.rand(n_in, n_out, device=dev)
    nu0, nu1 = 1e-4, 1e-2
    ref = w.double() - nu0 * s_pre.double().t() @ x_post.double() + nu1 * x_pre.double().t() @ s_post.double()

    def two_addmm(w):
        w.addmm_(s_pre.t(), x_post, alpha=-nu0)
        w.addmm_(x_pre.t(), s_post, alpha=nu1)

    def concat(w):
        a = torch.cat([s_pre, x_pre], 0)
        b = torch.cat([x_post * -nu0, s_post * nu1], 0)
        w.addmm_(a.t(), b)

    def transposed(w):
        wt = w.t()
        wt.addmm_(x_post.t(), s_pre, alpha=-nu0)
        wt.addmm_(s_post.t(), x_pre, alpha=nu1)

    def one_spike_post(w):
        w.addmm_(s_pre.t(), x_post, alpha=-nu0)
        has, idx = s_post.max(1)
        w.index_add_(1, idx, (x_pre * (has * nu1)[:, None]).t())

    for prec in ("highest", "high"):
        torch.set_float32_matmul_precision(prec)
        for name, fn in (("two_addmm", two_addmm), ("concat", concat), ("transposed", transposed),
                         ("one_spike_post", one_spike_post)):
            w2 = w.clone()
            fn(w2)
            err = float((w2.double() - ref).abs().max())
            us = graph_us(lambda: fn(w.clone()), reps=50, inner=20, warmup=5)
            print(f"{prec:8s} {name:15s} {us:8.2f} us/step  max|err| {err:.2e}")


if __name__ == "__main__":
    main()
