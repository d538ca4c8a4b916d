"""Multi-step exponential-Euler LIF and adaptive LIF (brainstate's ``LIF``/``ALIF``, in BrainPy's
brainpy/_neuron.py since brainstate 0.2.0; snnrun's ``exp_euler_lif``/``alif``) forward and
backward over a whole spike train.

Per element and step, with d = exp(-dt / tau), d_a = exp(-dt / tau_a), g = v_th - v_reset::

    target = v_rest + r x_t
    h_t    = target + (v_{t-1} - target) d                     charge (exact for held input)
    b_t    = a_{t-1} d_a                                        adaptation decays (ALIF)
    u_t    = (h_t - (v_th + beta b_t)) / g,    s_t = H(u_t)     fire
    v_t    = h_t - g s_t                       soft reset
    v_t    = h_t - (stop_grad(h_t) - v_reset) s_t               hard reset
    a_t    = b_t + s_t                                          each spike adds 1 (ALIF)

``exp_euler_lif`` is the same without a (beta = 0). Backward through time, with sg'(u) the
surrogate derivative and r_s = 0 when the reset is detached, else -g (soft) or
-(h_t - v_reset) (hard)::

    gs_t    = g_s_t + g_a_t + g_v_t r_s         everything that depends on s_t
    gu_t    = gs_t sg'(u_t)
    gh_t    = g_v_t + gu_t / g                  (dv/dh = 1: the hard reset's h is stop-graded)
    g_x_t   = gh_t r (1 - d),   g_v_{t-1} = gh_t d,   g_a_{t-1} = (g_a_t - gu_t beta / g) d_a

The CUDA path runs one Triton kernel per direction, organised as the LIF kernels of
:mod:`snnrun.engine.kernels.lif_multistep`: chunks of CHUNK steps loaded at once, (v, a) checkpoints
every CHUNK steps, h and b recomputed in the backward pass. The CPU path keeps h and b and runs
the same arithmetic in the same order as the step-by-step nodes, so its spikes are identical
to theirs.
"""

from __future__ import annotations

import torch

from snnrun.engine.kernels.launch import FastLaunch
from snnrun.engine.kernels.lif_multistep import LAUNCH, _cdiv, spike_grad, surrogate_grad, triton_available, widened

try:
    import triton
    import triton.language as tl

    from snnrun.engine.kernels.lif_multistep import _chunk, _load_or_zero, _row
except ImportError:  # pragma: no cover - depends on the install
    triton = None

SURROGATES = ("sigmoid", "atan", "relu_grad")


def surrogate_derivative(u: torch.Tensor, kind: str, alpha: float, width: float) -> torch.Tensor:
    if kind == "relu_grad":  # brainpy's ReluGrad: max(0, alpha (width - |u|))
        return (alpha * (width - u.abs())).clamp_min(0.0)
    return surrogate_grad(u, kind, alpha)


# -- PyTorch path (CPU, and CUDA without Triton) -----------------------------------------------------
def _forward_torch(x, v, a, p):
    r, d, da, v_rest, v_th, v_reset, beta, soft, adapt = p
    g = v_th - v_reset
    s_seq, h_seq = torch.empty_like(x), torch.empty_like(x)
    b_seq = torch.empty_like(x) if adapt else None
    for t in range(x.shape[0]):
        target = v_rest + r * x[t]
        h = target + (v - target) * d
        if adapt:
            a = a * da
            b_seq[t] = a
            u = (h - (v_th + beta * a)) / g
        else:
            u = (h - v_th) / g
        s = (u >= 0).to(x.dtype)
        v = h - g * s if soft else h - (h - v_reset) * s
        if adapt:
            a = a + s
        s_seq[t], h_seq[t] = s, h
    return s_seq, h_seq, b_seq, v, a


def _backward_torch(g_s, g_vT, g_aT, h_seq, b_seq, p, detach, kind, alpha, width):
    r, d, da, v_rest, v_th, v_reset, beta, soft, adapt = p
    g = v_th - v_reset
    g_x = torch.empty_like(h_seq)
    g_v, g_a = g_vT, g_aT
    for t in range(h_seq.shape[0] - 1, -1, -1):
        h = h_seq[t]
        u = (h - (v_th + beta * b_seq[t])) / g if adapt else (h - v_th) / g
        sg = surrogate_derivative(u, kind, alpha, width)
        gs = g_s[t] + (g_a if adapt else 0.0)
        if not detach:
            gs = gs + g_v * (-g if soft else -(h - v_reset))
        gu = gs * sg
        gh = g_v + gu / g
        g_x[t] = gh * (r * (1.0 - d))
        g_v = gh * d
        if adapt:
            g_a = (g_a - gu * (beta / g)) * da
    return g_x, g_v, g_a


# -- Triton path ------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _alif_step(v, a, x, r, d, da, v_rest, v_th, v_reset, beta, SOFT: tl.constexpr, ADAPT: tl.constexpr):
        target = v_rest + r * x
        h = target + (v - target) * d
        g = v_th - v_reset
        if ADAPT:
            b = a * da
            u = (h - (v_th + beta * b)) / g
        else:
            b = a
            u = (h - v_th) / g
        s = (u >= 0).to(tl.float32)
        if SOFT:
            v_new = h - g * s
        else:
            v_new = h - (h - v_reset) * s
        if ADAPT:
            a_new = b + s
        else:
            a_new = a
        return h, b, s, v_new, a_new

    @triton.jit
    def _alif_fwd_kernel(x_ptr, v0_ptr, a0_ptr, s_ptr, ckv_ptr, cka_ptr, vT_ptr, aT_ptr, T, N, r, d, da,
                         v_rest, v_th, v_reset, beta, SOFT: tl.constexpr, ADAPT: tl.constexpr,
                         STORE_CKPT: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        rows = tl.arange(0, CHUNK)
        v = tl.load(v0_ptr + offs, mask=mask, other=0.0)
        a = tl.load(a0_ptr + offs, mask=mask, other=0.0)
        for c in range(0, tl.cdiv(T, CHUNK)):
            tile, tmask = _chunk(c, rows, offs, mask, T, N, CHUNK)
            X = tl.load(x_ptr + tile, mask=tmask, other=0.0)
            if STORE_CKPT:
                tl.store(ckv_ptr + c * N + offs, v, mask=mask)
                if ADAPT:
                    tl.store(cka_ptr + c * N + offs, a, mask=mask)
            S = tl.zeros([CHUNK, BLOCK], dtype=tl.float32)
            for i in tl.static_range(CHUNK):
                h, b, s, v_new, a_new = _alif_step(v, a, _row(X, rows, i), r, d, da, v_rest, v_th, v_reset,
                                                   beta, SOFT, ADAPT)
                valid = c * CHUNK + i < T  # steps past T (last chunk) change nothing
                v = tl.where(valid, v_new, v)
                a = tl.where(valid, a_new, a)
                S = tl.where(rows[:, None] == i, s[None, :], S)
            tl.store(s_ptr + tile, S, mask=tmask)
        tl.store(vT_ptr + offs, v, mask=mask)
        tl.store(aT_ptr + offs, a, mask=mask)

    @triton.jit
    def _alif_bwd_kernel(gs_ptr, gvT_ptr, gaT_ptr, x_ptr, ckv_ptr, cka_ptr, gx_ptr, gv0_ptr, ga0_ptr, T, N,
                         r, d, da, v_rest, v_th, v_reset, beta, alpha, width, SOFT: tl.constexpr,
                         ADAPT: tl.constexpr, DETACH: tl.constexpr, SG: tl.constexpr,
                         GS_SCALAR: tl.constexpr, GV_ZERO: tl.constexpr, GA_ZERO: tl.constexpr,
                         BLOCK: tl.constexpr, CHUNK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        rows = tl.arange(0, CHUNK)
        g = v_th - v_reset
        g_v = _load_or_zero(gvT_ptr, offs, mask, GV_ZERO, BLOCK)
        g_a = _load_or_zero(gaT_ptr, offs, mask, GA_ZERO, BLOCK)
        if GS_SCALAR:
            g_scalar = tl.load(gs_ptr)
        n_chunks = tl.cdiv(T, CHUNK)
        for j in range(0, n_chunks):
            c = n_chunks - 1 - j
            tile, tmask = _chunk(c, rows, offs, mask, T, N, CHUNK)
            X = tl.load(x_ptr + tile, mask=tmask, other=0.0)
            if not GS_SCALAR:
                GS = tl.load(gs_ptr + tile, mask=tmask, other=0.0)
            v = tl.load(ckv_ptr + c * N + offs, mask=mask, other=0.0)
            if ADAPT:
                a = tl.load(cka_ptr + c * N + offs, mask=mask, other=0.0)
            else:
                a = v  # unused
            H = tl.zeros([CHUNK, BLOCK], dtype=tl.float32)
            B = tl.zeros([CHUNK, BLOCK], dtype=tl.float32)
            for i in tl.static_range(CHUNK):  # recompute the chunk's h and decayed a
                h, b, s, v, a = _alif_step(v, a, _row(X, rows, i), r, d, da, v_rest, v_th, v_reset, beta,
                                           SOFT, ADAPT)
                H = tl.where(rows[:, None] == i, h[None, :], H)
                if ADAPT:
                    B = tl.where(rows[:, None] == i, b[None, :], B)
            GX = tl.zeros([CHUNK, BLOCK], dtype=tl.float32)
            for q in tl.static_range(CHUNK):
                i = CHUNK - 1 - q
                h = _row(H, rows, i)
                if ADAPT:
                    u = (h - (v_th + beta * _row(B, rows, i))) / g
                else:
                    u = (h - v_th) / g
                if SG == 0:
                    e = 1.0 / (1.0 + tl.exp(-alpha * u))
                    sg = alpha * e * (1.0 - e)
                elif SG == 1:
                    z = 1.5707963267948966 * alpha * u
                    sg = alpha * 0.5 / (1.0 + z * z)
                else:
                    sg = tl.maximum(alpha * (width - tl.abs(u)), 0.0)
                if GS_SCALAR:
                    gs = g_scalar + g_a * 0.0
                else:
                    gs = _row(GS, rows, i)
                if ADAPT:
                    gs = gs + g_a
                if not DETACH:
                    if SOFT:
                        gs = gs - g_v * g
                    else:
                        gs = gs - g_v * (h - v_reset)
                gu = gs * sg
                gh = g_v + gu / g
                GX = tl.where(rows[:, None] == i, (gh * (r * (1.0 - d)))[None, :], GX)
                valid = c * CHUNK + i < T
                g_v = tl.where(valid, gh * d, g_v)
                if ADAPT:
                    g_a = tl.where(valid, (g_a - gu * (beta / g)) * da, g_a)
            tl.store(gx_ptr + tile, GX, mask=tmask)
        tl.store(gv0_ptr + offs, g_v, mask=mask)
        tl.store(ga0_ptr + offs, g_a, mask=mask)

    _launch_fwd, _launch_bwd = FastLaunch(_alif_fwd_kernel), FastLaunch(_alif_bwd_kernel)


class ALIFMultiStep(torch.autograd.Function):
    """Autograd function over a whole spike train; see the module docstring."""

    @staticmethod
    def forward(ctx, x_seq, v0, a0, p, detach, kind, alpha, width, backend):
        r, d, da, v_rest, v_th, v_reset, beta, soft, adapt = p
        x = x_seq if x_seq.is_contiguous() else x_seq.contiguous()
        shape = x.shape[1:]
        v0 = v0.expand(shape).contiguous()
        a0 = a0.expand(shape).contiguous()
        use_triton = backend != "torch" and triton_available(x)
        need_grad = any(ctx.needs_input_grad)
        if use_triton:
            T = x.shape[0]
            N = x.numel() // T
            n_ck = _cdiv(T, LAUNCH["CHUNK"])
            s_seq, vT, aT = torch.empty_like(x), x.new_empty(shape), x.new_empty(shape)
            ckv = x.new_empty((n_ck, *shape)) if need_grad else vT
            cka = x.new_empty((n_ck, *shape)) if need_grad and adapt else vT
            _launch_fwd(_cdiv(N, LAUNCH["BLOCK"]), x, v0, a0, s_seq, ckv, cka, vT, aT, T, N, r, d, da, v_rest,
                        v_th, v_reset, beta, SOFT=soft, ADAPT=adapt, STORE_CKPT=need_grad, **LAUNCH)
            saved = (x, ckv, cka) if need_grad else (None,) * 3
        else:
            s_seq, h_seq, b_seq, vT, aT = _forward_torch(x, v0, a0, p)
            saved = (h_seq, b_seq, None) if need_grad else (None,) * 3
        ctx.save_for_backward(*saved)
        ctx.cfg = (p, detach, kind, alpha, width, use_triton)
        return s_seq, vT, aT

    @staticmethod
    def backward(ctx, g_s, g_vT, g_aT):
        first, second, third = ctx.saved_tensors
        p, detach, kind, alpha, width, use_triton = ctx.cfg
        r, d, da, v_rest, v_th, v_reset, beta, soft, adapt = p
        if use_triton:
            x, ckv, cka = first, second, third
            T = x.shape[0]
            N = x.numel() // T
            g_s, scalar = spike_grad(g_s, x.device)
            g_x, g_v0, g_a0 = torch.empty_like(x), x.new_empty(x.shape[1:]), x.new_empty(x.shape[1:])
            gv_zero, ga_zero = g_vT is None, g_aT is None
            g_vT = x if gv_zero else g_vT.contiguous()
            g_aT = x if ga_zero else g_aT.contiguous()
            _launch_bwd(_cdiv(N, LAUNCH["BLOCK"]), g_s, g_vT, g_aT, x, ckv, cka, g_x, g_v0, g_a0, T, N, r, d, da,
                        v_rest, v_th, v_reset, beta, alpha, width, SOFT=soft, ADAPT=adapt, DETACH=detach,
                        SG=SURROGATES.index(kind), GS_SCALAR=scalar, GV_ZERO=gv_zero, GA_ZERO=ga_zero,
                        **LAUNCH)
        else:
            h_seq, b_seq = first, second
            zeros = torch.zeros_like(h_seq[0])
            g_s = torch.zeros_like(h_seq) if g_s is None else g_s
            g_x, g_v0, g_a0 = _backward_torch(g_s, zeros if g_vT is None else g_vT, zeros if g_aT is None else g_aT,
                                              h_seq, b_seq, p, detach, kind, alpha, width)
        return g_x, g_v0, g_a0, None, None, None, None, None, None


def alif_multistep(x_seq: torch.Tensor, v0: torch.Tensor, a0: torch.Tensor, *, tau: float, r: float = 1.0,
                   v_rest: float = 0.0, v_th: float = 1.0, v_reset: float = 0.0, spk_reset: str = "soft",
                   tau_a: float | None = None, beta: float = 0.0, dt: float = 1.0, detach_reset: bool = False,
                   surrogate: str = "relu_grad", alpha: float = 0.3, width: float = 1.0,
                   backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run an exp-Euler LIF (``tau_a=None``) or ALIF layer over ``x_seq`` [T, B, ...] from
    state (v0, a0). Returns (spikes, final v, final a)."""
    import math

    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    adapt = tau_a is not None
    p = (float(r), math.exp(-dt / tau), math.exp(-dt / tau_a) if adapt else 1.0, float(v_rest), float(v_th),
         float(v_reset), float(beta) if adapt else 0.0, spk_reset == "soft", adapt)
    x32, narrow = widened(x_seq)
    s_seq, vT, aT = ALIFMultiStep.apply(x32, v0, a0, p, bool(detach_reset), surrogate, float(alpha), float(width),
                                        backend)
    return narrow(s_seq), vT, aT
