"""Multi-step LIF/IF forward and backward over a whole spike train in one pass per direction.

Dimensionless trainable LIF (SpikingJelly's LIFNode conventions), per element and step::

    h_t = v_{t-1} + k (x_t - (v_{t-1} - v_rest))           decay_input=True,  k = 1 / tau
    h_t = v_{t-1} - k (v_{t-1} - v_rest) + x_t              decay_input=False
    h_t = v_{t-1} + x_t                                     IF (tau = None)
    s_t = H(h_t - v_th)                                     forward: Heaviside
    v_t = h_t - s_t (h_t - v_reset)                         hard reset (v_rest = v_reset)
    v_t = h_t - s_t v_th                                    soft reset (v_reset = None, v_rest = 0)

(written in the same operation order as snnrun.components.neurons.trainable's step-by-step nodes, so the
CPU path gives bit-identical results to them)

Backward through time with a surrogate derivative sg'(h - v_th) for dH::

    dv_t/dh_t = (1 - s_t) + (v_reset - h_t) sg'     hard (the second term dropped if detach_reset)
    dv_t/dh_t = 1 - v_th sg'                        soft (1 if detach_reset)
    g_h_t     = g_s_t sg' + g_v_t dv_t/dh_t
    g_x_t     = g_h_t * c_x,        g_v_{t-1} = g_h_t * c_v
    g_k      += g_h_t * dh_t/dk     dh/dk = x_t - (v_{t-1} - v_rest)  or  -(v_{t-1} - v_rest)
with c_x = k (decay_input) or 1, c_v = 1 - k (LIF) or 1 (IF). ``k`` may be a tensor with a
gradient (PLIF's k = sigmoid(w)): then the kernels read it from memory (no host sync) and the
backward pass returns dL/dk.

The CUDA path runs each direction as one Triton kernel, one thread per (batch, neuron)
element walking over T in chunks of CHUNK steps whose inputs are loaded at once. The forward
kernel writes the spikes and, for the backward pass, only the membrane potential entering each
chunk (1/CHUNK of the state); the backward kernel recomputes h from those checkpoints and x
(which autograd keeps anyway) instead of reading a saved [T, ...] h. Per direction x is read
once and spikes/g_x written once: the memory traffic floor for this layer, instead of ~10
kernels per step in eager PyTorch. The CPU fallback keeps h and runs the same arithmetic in
the same order, so both paths give the same numbers (to float rounding of fused multiply-adds).
"""

from __future__ import annotations

import math

import torch

from snnrun.engine.kernels.launch import FastLaunch

try:  # Triton ships with CUDA builds of torch; the CPU path never needs it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None

SURROGATES = ("sigmoid", "atan")


def surrogate_grad(u: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
    """sg'(u): sigmoid -> alpha s(alpha u)(1 - s(alpha u)); atan -> alpha / (2 (1 + (pi/2 alpha u)^2))."""
    if kind == "sigmoid":
        sg = torch.sigmoid(alpha * u)
        return alpha * sg * (1.0 - sg)
    if kind == "atan":
        return alpha / 2.0 / (1.0 + (math.pi / 2.0 * alpha * u) ** 2)
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")


IF_MODE, LIF_DECAY_INPUT, LIF_NO_DECAY_INPUT = 0, 1, 2


def _mode(tau: float | None, decay_input: bool, k=None) -> tuple[int, object, object, object]:
    """(mode, k, c_v, c_x): the charge equation, and dh/dv, dh/dx for the backward pass.
    A tensor ``k`` (learned) gives c_v = c_x = None: the backward pass derives them from the
    saved k (the kernels on the device), which spares two tensor ops per forward call."""
    if tau is None or math.isinf(tau):
        return IF_MODE, 0.0, 1.0, 1.0
    if torch.is_tensor(k):
        return (LIF_DECAY_INPUT if decay_input else LIF_NO_DECAY_INPUT), k, None, None
    k = 1.0 / tau if k is None else float(k)
    if decay_input:
        return LIF_DECAY_INPUT, k, 1.0 - k, k
    return LIF_NO_DECAY_INPUT, k, 1.0 - k, 1.0


# -- PyTorch reference path (CPU, and CUDA without Triton) ---------------------------------------
def _forward_torch(x, v0, mode, k, v_th, v_reset, soft):
    T = x.shape[0]
    s_seq = torch.empty_like(x)
    h_seq = torch.empty_like(x)
    v = v0
    v_rest = 0.0 if soft else v_reset
    for t in range(T):
        if mode == IF_MODE:
            h = v + x[t]
        elif mode == LIF_DECAY_INPUT:
            h = v + k * (x[t] - (v - v_rest))
        else:
            h = v - k * (v - v_rest) + x[t]
        s = ((h - v_th) >= 0).to(x.dtype)
        v = h - s * v_th if soft else h - s * (h - v_reset)
        s_seq[t], h_seq[t] = s, h
    return s_seq, h_seq, v


def _backward_torch(g_s, g_vT, s_seq, h_seq, c_v, c_x, v_th, v_reset, soft, detach_reset, kind, alpha,
                    grad_k=None):
    """``grad_k``: None, or (mode, x, v0) to also return dL/dk (v_{t-1} rebuilt from h and s)."""
    T = g_s.shape[0]
    g_x = torch.empty_like(g_s)
    g_v = g_vT
    g_k = None
    for t in range(T - 1, -1, -1):
        h, s = h_seq[t], s_seq[t]
        sg = surrogate_grad(h - v_th, kind, alpha)
        if soft:
            dv_dh = 1.0 if detach_reset else 1.0 - v_th * sg
        else:
            dv_dh = (1.0 - s) if detach_reset else (1.0 - s) + (v_reset - h) * sg
        g_h = g_s[t] * sg + g_v * dv_dh
        g_x[t] = g_h * c_x
        g_v = g_h * c_v
        if grad_k is not None:
            mode, x, v0 = grad_k
            v_rest = 0.0 if soft else v_reset
            if t == 0:
                v_prev = v0
            else:
                hp, sp = h_seq[t - 1], s_seq[t - 1]
                v_prev = hp - sp * v_th if soft else hp - sp * (hp - v_reset)
            dh_dk = x[t] - (v_prev - v_rest) if mode == LIF_DECAY_INPUT else -(v_prev - v_rest)
            term = (g_h * dh_dk).sum()
            g_k = term if g_k is None else g_k + term
    return g_x, g_v, g_k


# -- Triton path ------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _charge(v, x, k, v_rest, MODE: tl.constexpr):
        if MODE == 0:
            h = v + x
        elif MODE == 1:
            h = v + k * (x - (v - v_rest))
        else:
            h = v - k * (v - v_rest) + x
        return h

    @triton.jit
    def _fire_reset(h, v_th, v_reset, SOFT: tl.constexpr):
        s = ((h - v_th) >= 0).to(tl.float32)
        if SOFT:
            v = h - s * v_th
        else:
            v = h - s * (h - v_reset)
        return s, v

    @triton.jit
    def _chunk(c, rows, offs, mask, T, N, CHUNK: tl.constexpr):
        """Offsets and mask of chunk c's [CHUNK, BLOCK] tile of a [T, N] tensor."""
        t = c * CHUNK + rows
        return t[:, None] * N + offs[None, :], (t < T)[:, None] & mask[None, :]

    @triton.jit
    def _load_or_zero(ptr, offs, mask, ZERO: tl.constexpr, BLOCK: tl.constexpr):
        """A final state's incoming gradient; ZERO where that state was not used (None)."""
        if ZERO:
            return tl.zeros([BLOCK], tl.float32)
        return tl.load(ptr + offs, mask=mask, other=0.0)

    @triton.jit
    def _row(block, rows, i):
        # row i of a [CHUNK, BLOCK] tile whose CHUNK rows sit in one thread's registers: a
        # select-and-add over the rows, exact (x + 0 = x), with no shared-memory round trip
        return tl.sum(tl.where(rows[:, None] == i, block, 0.0), axis=0)

    @triton.jit
    def _lif_fwd_kernel(x_ptr, v0_ptr, s_ptr, ckpt_ptr, vT_ptr, k_ptr, T, N, k, v_th, v_reset, v0_value,
                        MODE: tl.constexpr, SOFT: tl.constexpr, STORE_CKPT: tl.constexpr,
                        V0_SCALAR: tl.constexpr, K_PTR: tl.constexpr, BLOCK: tl.constexpr,
                        CHUNK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        rows = tl.arange(0, CHUNK)
        v_rest = 0.0 if SOFT else v_reset
        if K_PTR:  # a learned k (PLIF) is read on the device: no host sync per call
            k = tl.load(k_ptr)
        if V0_SCALAR:  # every element starts at one value: nothing to materialise or read
            v = tl.full([BLOCK], v0_value, tl.float32)
        else:
            v = tl.load(v0_ptr + offs, mask=mask, other=0.0)
        for c in range(0, tl.cdiv(T, CHUNK)):
            # CHUNK steps of input are requested at once: one thread walks T dependent steps,
            # so without this the loop waits on memory latency at every step
            tile, tmask = _chunk(c, rows, offs, mask, T, N, CHUNK)
            X = tl.load(x_ptr + tile, mask=tmask, other=0.0)
            if STORE_CKPT:  # the state entering each chunk: the backward pass recomputes from it
                tl.store(ckpt_ptr + c * N + offs, v, mask=mask)
            S = tl.zeros([CHUNK, BLOCK], dtype=tl.float32)
            for i in tl.static_range(CHUNK):
                h = _charge(v, _row(X, rows, i), k, v_rest, MODE)
                s, v_next = _fire_reset(h, v_th, v_reset, SOFT)
                v = tl.where(c * CHUNK + i < T, v_next, v)  # steps past T (last chunk) change nothing
                S = tl.where(rows[:, None] == i, s[None, :], S)
            tl.store(s_ptr + tile, S, mask=tmask)
        tl.store(vT_ptr + offs, v, mask=mask)

    @triton.jit
    def _lif_bwd_kernel(gs_ptr, gvT_ptr, x_ptr, ckpt_ptr, gx_ptr, gv0_ptr, k_ptr, gk_ptr, T, N, k, c_v, c_x,
                        v_th, v_reset, alpha, MODE: tl.constexpr, SOFT: tl.constexpr, DETACH: tl.constexpr,
                        ATAN: tl.constexpr, GS_SCALAR: tl.constexpr, GV_ZERO: tl.constexpr,
                        STORE_GV0: tl.constexpr, K_PTR: tl.constexpr, GRAD_K: tl.constexpr,
                        BLOCK: tl.constexpr, CHUNK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        rows = tl.arange(0, CHUNK)
        v_rest = 0.0 if SOFT else v_reset
        if K_PTR:  # learned k: dh/dv and dh/dx follow from it here
            k = tl.load(k_ptr)
            c_v = 1.0 - k
            if MODE == 1:
                c_x = k
        g_k = tl.zeros([BLOCK], tl.float32)  # per-element sum over t of g_h dh/dk (GRAD_K)
        g_v = _load_or_zero(gvT_ptr, offs, mask, GV_ZERO, BLOCK)
        if GS_SCALAR:
            g_scalar = tl.load(gs_ptr)
        n_chunks = tl.cdiv(T, CHUNK)
        for j in range(0, n_chunks):
            c = n_chunks - 1 - j
            tile, tmask = _chunk(c, rows, offs, mask, T, N, CHUNK)
            # recompute this chunk's h from its checkpoint and input (the same arithmetic as
            # the forward pass, so the same spikes): reading x back costs what reading a saved
            # h would, and nothing of size [T, ...] is written in the forward pass but spikes
            X = tl.load(x_ptr + tile, mask=tmask, other=0.0)
            if not GS_SCALAR:
                GS = tl.load(gs_ptr + tile, mask=tmask, other=0.0)
            v = tl.load(ckpt_ptr + c * N + offs, mask=mask, other=0.0)
            v_chunk = v  # (GRAD_K) the potential before the chunk's first charge
            H = tl.zeros([CHUNK, BLOCK], dtype=tl.float32)
            for i in tl.static_range(CHUNK):
                h = _charge(v, _row(X, rows, i), k, v_rest, MODE)
                s, v = _fire_reset(h, v_th, v_reset, SOFT)
                H = tl.where(rows[:, None] == i, h[None, :], H)
            GX = tl.zeros([CHUNK, BLOCK], dtype=tl.float32)
            for r in tl.static_range(CHUNK):
                i = CHUNK - 1 - r
                h = _row(H, rows, i)
                if GS_SCALAR:  # e.g. the gradient of a sum: one value broadcast over [T, B, ...]
                    g_s = g_scalar
                else:
                    g_s = _row(GS, rows, i)
                u = h - v_th
                if ATAN:
                    z = 1.5707963267948966 * alpha * u
                    sg = alpha * 0.5 / (1.0 + z * z)
                else:
                    e = 1.0 / (1.0 + tl.exp(-alpha * u))
                    sg = alpha * e * (1.0 - e)
                s = (u >= 0).to(tl.float32)
                if SOFT:
                    if DETACH:
                        dv_dh = 1.0
                    else:
                        dv_dh = 1.0 - v_th * sg
                else:
                    if DETACH:
                        dv_dh = 1.0 - s
                    else:
                        dv_dh = (1.0 - s) + (v_reset - h) * sg
                g_h = g_s * sg + g_v * dv_dh
                GX = tl.where(rows[:, None] == i, (g_h * c_x)[None, :], GX)
                valid = c * CHUNK + i < T
                g_v = tl.where(valid, g_h * c_v, g_v)
                if GRAD_K:  # v before this step's charge: the previous step's reset h
                    if i == 0:
                        vp = v_chunk - v_rest
                    else:
                        _, v_prev = _fire_reset(_row(H, rows, i - 1), v_th, v_reset, SOFT)
                        vp = v_prev - v_rest
                    if MODE == 1:
                        dh_dk = _row(X, rows, i) - vp
                    else:
                        dh_dk = -vp
                    g_k += tl.where(valid, g_h * dh_dk, 0.0)
            tl.store(gx_ptr + tile, GX, mask=tmask)
        if STORE_GV0:
            tl.store(gv0_ptr + offs, g_v, mask=mask)
        if GRAD_K:
            tl.store(gk_ptr + offs, g_k, mask=mask)


    _launch_fwd, _launch_bwd = FastLaunch(_lif_fwd_kernel), FastLaunch(_lif_bwd_kernel)


def spike_grad(g_s: torch.Tensor | None, device) -> tuple[torch.Tensor, bool]:
    """The spikes' incoming gradient for the backward kernels, and whether it is one value: a
    broadcast gradient (all strides 0, as from loss = s.sum()) is read through its one element
    (the expanded tensor points at it) instead of being materialised as [T, ...]."""
    if g_s is None:
        return torch.zeros(1, device=device), True
    if all(st == 0 for st in g_s.stride()):
        return g_s, True
    return (g_s if g_s.is_contiguous() else g_s.contiguous()), False


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)  # (triton.cdiv is a jit function in recent Triton: slow to call from Python)


HALF = (torch.float16, torch.bfloat16)


def widened(x_seq: torch.Tensor):
    """``(x_seq as float32, narrow)``: the kernels compute and keep the membrane state in float32,
    so a half-precision input (autocast's bf16 conv and dense outputs) is widened on the way in
    (through autograd: its gradient is narrowed back) and ``narrow`` casts the spikes (0/1, exact)
    back to the input's dtype. Without it a bf16 layer would miss the Triton path and fall back to
    one eager kernel per operation and step."""
    if x_seq.dtype not in HALF:
        return x_seq, lambda t: t
    dtype = x_seq.dtype
    return x_seq.float(), lambda t: t.to(dtype)


def triton_available(t: torch.Tensor) -> bool:
    # the kernels index with 32-bit offsets
    return triton is not None and t.is_cuda and t.dtype == torch.float32 and t.numel() < 2**31


# launch configuration, tuned on an H200 with tools/tune_lif_kernel.py: at [32, 128, 4096] the
# forward kernel takes 40 us and the backward 43 us (each moving 136 MB: ~3.3 TB/s)
LAUNCH = {"BLOCK": 256, "num_warps": 2, "CHUNK": 8}


class LIFMultiStep(torch.autograd.Function):
    """Autograd function over a whole spike train; see the module docstring. ``v0`` is a tensor
    broadcastable to one step of ``x_seq``, or a float (every element starts there); ``k`` a
    float or a 0-dim tensor (learned: its gradient is returned)."""

    @staticmethod
    def forward(ctx, x_seq, v0, tau, v_th, v_reset, decay_input, detach_reset, surrogate, alpha, backend, k):
        soft = v_reset is None
        mode, k, c_v, c_x = _mode(tau, decay_input, k)
        k_tensor = torch.is_tensor(k)
        vr = 0.0 if soft else float(v_reset)
        # host work is kept to a minimum here: at [32, 128, 4096] the two kernels take ~0.1 ms
        # on an H100/H200, about what the Python around them costs
        x = x_seq if x_seq.is_contiguous() else x_seq.contiguous()
        step_shape = x.shape[1:]
        v0_scalar = not torch.is_tensor(v0)
        if not v0_scalar and (v0.shape != step_shape or not v0.is_contiguous()):
            v0 = v0.expand(step_shape).contiguous()
        use_triton = backend != "torch" and triton_available(x)
        need_grad = any(ctx.needs_input_grad)
        if use_triton:
            T = x.shape[0]
            N = x.numel() // T
            s_seq, vT = torch.empty_like(x), x.new_empty(step_shape)
            if k_tensor:
                k = k.detach().to(device=x.device, dtype=torch.float32).reshape(1)
            # the membrane potential entering every CHUNK-th step: all the backward pass needs
            # besides x (which autograd keeps anyway), 1/CHUNK of a saved h
            ckpt = x.new_empty((_cdiv(T, LAUNCH["CHUNK"]), *step_shape)) if need_grad else vT
            _launch_fwd(_cdiv(N, LAUNCH["BLOCK"]), x, vT if v0_scalar else v0, s_seq, ckpt, vT,
                        k if k_tensor else x, T, N, 0.0 if k_tensor else k, float(v_th), vr,
                        float(v0) if v0_scalar else 0.0, MODE=mode, SOFT=soft, STORE_CKPT=need_grad,
                        V0_SCALAR=v0_scalar, K_PTR=k_tensor, **LAUNCH)
            saved = (x, ckpt, k if k_tensor else None, None) if need_grad else (None,) * 4
        else:
            v0t = torch.full_like(x[0], float(v0)) if v0_scalar else v0
            s_seq, h_seq, vT = _forward_torch(x, v0t, mode, k.detach() if k_tensor else k, float(v_th), vr, soft)
            # spikes are not saved: the backward pass recomputes them as h >= v_th
            saved = (h_seq, x, k.detach() if k_tensor else None, v0t) if need_grad else (None,) * 4
        ctx.save_for_backward(*saved)
        ctx.cfg = (mode, k_tensor, k, c_v, c_x, float(v_th), vr, soft, bool(detach_reset), surrogate,
                   float(alpha), use_triton)
        return s_seq, vT

    @staticmethod
    def backward(ctx, g_s, g_vT):
        first, second, k_saved, v0t = ctx.saved_tensors
        mode, k_tensor, k, c_v, c_x, v_th, vr, soft, detach, kind, alpha, use_triton = ctx.cfg
        need_gv0, need_gk = ctx.needs_input_grad[1], ctx.needs_input_grad[10]
        g_k = None
        if use_triton:
            x, ckpt = first, second
            T = x.shape[0]
            N = x.numel() // T
            g_s, scalar = spike_grad(g_s, x.device)
            g_x = torch.empty_like(x)
            g_v0 = x.new_empty(x.shape[1:]) if need_gv0 else None
            gk_parts = x.new_empty(N) if need_gk else None
            gv_zero = g_vT is None
            g_vT = x if gv_zero else (g_vT if g_vT.is_contiguous() else g_vT.contiguous())
            _launch_bwd(_cdiv(N, LAUNCH["BLOCK"]), g_s, g_vT, x, ckpt, g_x, g_x if g_v0 is None else g_v0,
                        k_saved if k_tensor else x, g_x if gk_parts is None else gk_parts, T, N,
                        0.0 if k_tensor else k, 0.0 if k_tensor else c_v, 1.0 if k_tensor else c_x, v_th, vr,
                        alpha, MODE=mode, SOFT=soft, DETACH=detach, ATAN=(kind == "atan"), GS_SCALAR=scalar,
                        GV_ZERO=gv_zero, STORE_GV0=need_gv0, K_PTR=k_tensor, GRAD_K=need_gk, **LAUNCH)
            if need_gk:
                g_k = gk_parts.sum().reshape(())
        else:
            h_seq, x = first, second
            if k_tensor:
                c_v, c_x = 1.0 - k_saved, (k_saved if mode == LIF_DECAY_INPUT else 1.0)
            g_vT = torch.zeros_like(h_seq[0]) if g_vT is None else g_vT
            g_s = torch.zeros_like(h_seq) if g_s is None else g_s
            s_seq = ((h_seq - v_th) >= 0).to(h_seq.dtype)
            g_x, g_v0, g_k = _backward_torch(g_s, g_vT, s_seq, h_seq, c_v, c_x, v_th, vr, soft, detach, kind, alpha,
                                             grad_k=(mode, x, v0t) if need_gk else None)
            g_v0 = g_v0 if need_gv0 else None
        return g_x, g_v0, None, None, None, None, None, None, None, None, g_k


def lif_multistep(x_seq: torch.Tensor, v0: torch.Tensor | float | None = None, *, tau: float | None = 2.0,
                  v_th: float = 1.0, v_reset: float | None = 0.0, decay_input: bool = True,
                  detach_reset: bool = False, surrogate: str = "sigmoid", alpha: float = 4.0,
                  backend: str = "auto", k: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a LIF (``tau``) or IF (``tau=None``) layer over ``x_seq`` [T, B, ...].

    Returns (spikes [T, B, ...], final membrane potential [B, ...]). ``backend``: ``auto``
    (Triton on CUDA float32, PyTorch otherwise) or ``torch``. ``k`` overrides the leak factor
    1/tau (e.g. dt/tau computed by the caller, for bit-identical results with its own steps);
    a 0-dim tensor ``k`` (PLIF's sigmoid(w)) receives its gradient.
    """
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    if v0 is None:  # start at rest: v_reset, or 0 with soft reset
        v0 = 0.0 if v_reset is None else v_reset
    if not torch.is_tensor(v0):
        v0 = float(v0)
    x32, narrow = widened(x_seq)
    s_seq, vT = LIFMultiStep.apply(x32, v0, tau, v_th, v_reset, decay_input, detach_reset, surrogate, alpha,
                                   backend, k)
    return narrow(s_seq), vT


# -- eager reference: the plain per-step PyTorch loop (what snnTorch/Norse/SpikingJelly's torch
#    backend do), kept for tests and as the `loop` baseline of `snnrun bench` ----------------------
class _HeavisideSG(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, kind, alpha):
        ctx.save_for_backward(u)
        ctx.kind, ctx.alpha = kind, alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * surrogate_grad(u, ctx.kind, ctx.alpha), None, None


def lif_multistep_loop(x_seq: torch.Tensor, *, tau: float | None = 2.0, v_th: float = 1.0,
                       v_reset: float | None = 0.0, decay_input: bool = True, detach_reset: bool = False,
                       surrogate: str = "sigmoid", alpha: float = 4.0,
                       k: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Same equations as :func:`lif_multistep`, one autograd step at a time."""
    vr = 0.0 if v_reset is None else v_reset
    v = torch.full_like(x_seq[0], vr)
    k = (None if tau is None else 1.0 / tau) if k is None else k
    out = []
    for t in range(x_seq.shape[0]):
        if k is None:
            h = v + x_seq[t]
        elif decay_input:
            h = v + k * (x_seq[t] - (v - vr))
        else:
            h = v - k * (v - vr) + x_seq[t]
        s = _HeavisideSG.apply(h - v_th, surrogate, alpha)
        sr = s.detach() if detach_reset else s
        v = h - sr * v_th if v_reset is None else h - sr * (h - v_reset)
        out.append(s)
    return torch.stack(out), v
