"""Float32-accurate products of spikes with float32 weights on fp16 tensor cores.

A spike matrix ``a`` (0/1, or small integers) is exact in fp16. The weights are split into two
fp16 parts, ``w = w_hi + w_lo / 2^11``: ``w_hi`` is ``w`` with its mantissa cut to fp16's 10
explicit bits, ``w_lo = fp16((w - w_hi) 2^11)`` rounds the rest to 11 more bits, so
``w_hi + w_lo / 2^11`` matches ``w`` to a relative ``2^-22`` (float32 keeps 24 bits; below
fp16's normal range, |w| < 2^-14, to an absolute 2^-24). Both parts go through one fp16 matrix
product with float32 accumulation and output::

    a @ w  ~=  a @ w_hi  +  (a @ w_lo) / 2^11

On an H100/H200 that product runs on tensor cores, several times faster than a float32 SIMT
GEMM at Diehl & Cook sizes, with errors at float32 rounding level (TF32, the other fast
option, keeps only 11 bits of the weights). Requirements: |w| < 65504 (fp16's range) and ``a``
exact in fp16 (integers up to 2048).
"""

from __future__ import annotations

import torch

LO_SCALE = 2048.0  # 2^11: lifts the low part out of fp16's subnormal range
HI_MASK = -(1 << 13)  # keeps sign, exponent and the top 10 of float32's 23 mantissa bits


def split_fp16(w: torch.Tensor) -> torch.Tensor:
    """``[w_hi | w_lo]`` side by side, shape (k, 2n), fp16."""
    # the high part by masking bits, not by a float32 -> fp16 -> float32 round trip: torch.compile
    # drops such round trips inside a fused kernel (it does not emulate the cast's rounding),
    # which would leave w_lo = 0 silently
    hi = (w.view(torch.int32) & HI_MASK).view(torch.float32)
    return torch.cat([hi.to(torch.float16), ((w - hi) * LO_SCALE).to(torch.float16)], 1)


def split_fp16_matmul(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``a @ w`` (a: (m, k) spikes, w: (k, n) float32) as described in the module docstring."""
    n = w.shape[1]
    out = torch.mm(a.to(torch.float16), split_fp16(w), out_dtype=torch.float32)
    return out[:, :n] + out[:, n:] * (1.0 / LO_SCALE)
