"""Connections with weights ``w``: dense, one_to_one, lateral, conv2d.

Local rules change ``w`` in place; a gradient learner trains it (and the bias) when the model's
learner is a gradient learner. Weights are saved in checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnrun.components.connections.base import Connection, init_weights, weights
from snnrun.engine.kernels.split_matmul import split_fp16_matmul
from snnrun.errors import ConfigError

MATMULS = ("fp32", "fp16x2")


def _bias(n: int, on: bool, fan_in: int):
    return weights(init_weights((n,), "fan_in", "bias", fan_in=fan_in)) if on else None


@Connection.register("dense", "all_to_all", "linear")
class DenseConnection(Connection):
    """All-to-all weights ``w`` of shape (n_source, n_target): ``I = s @ w (+ b)``.

    The target size is the target group's ``n`` or ``out_features``. ``bias`` adds a learned
    bias (initialised like torch's Linear). ``matmul``: ``fp32`` (float32 product; TF32 where
    torch's matmul precision is ``high``) or ``fp16x2``: on CUDA, weights split into two fp16
    parts and the product run on tensor cores with float32 accumulation, accurate to a relative
    2^-22 for 0/1 spikes (:mod:`snnrun.engine.kernels.split_matmul`); needs |w| < 65504. The CPU,
    and a connection trained by gradient, use float32.
    """

    has_weights = True

    def __init__(self, source: str = "", target: str = "", *, init=None, matmul: str = "fp32",
                 out_features: int | None = None, bias: bool = False, **kw):
        super().__init__(source, target, **kw)
        if matmul not in MATMULS:
            raise ConfigError(f"unknown matmul '{matmul}'. Allowed: {', '.join(MATMULS)}", key="matmul")
        if matmul == "fp16x2" and max(abs(self.wmin), abs(self.wmax)) >= 65504:
            raise ConfigError("fp16x2 needs weights bounded within fp16's range: set wmin and wmax to "
                              "|w| < 65504, or use matmul: fp32", key="matmul")
        if self.target_shape is None:
            if out_features is None:
                raise ConfigError("give the target group's size 'n' or this connection's out_features",
                                  key="out_features")
            self.target_shape = (int(out_features),)
        elif out_features is not None and int(out_features) != self.n_target:
            raise ConfigError(f"out_features={out_features} but the target group has {self.n_target} neurons",
                              key="out_features")
        self.matmul = matmul
        w = init_weights((self.n_source, self.n_target), init, fan_in=self.n_source)
        self.w = weights(w.clamp(self.wmin, self.wmax))
        self.b = _bias(self.n_target, bool(bias), self.n_source)
        self.normalize()

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        flat = s.flatten(1)
        if flat.dtype != self.w.dtype and not torch.is_autocast_enabled():
            flat = flat.to(self.w.dtype)
        if self.matmul == "fp16x2" and flat.is_cuda and not self.w.requires_grad:
            out = split_fp16_matmul(flat, self.w)
        elif self.b is not None:
            out = torch.addmm(self.b, flat, self.w) if not torch.is_autocast_enabled() else flat @ self.w + self.b
        else:
            out = flat @ self.w
        return out.view(s.shape[0], *self.out_shape)

    def normalize(self) -> None:
        if self.norm is None:
            return
        total = self.w.abs().sum(0, keepdim=True)
        total = torch.where(total == 0, torch.ones_like(total), total)
        self.w.mul_(self.norm / total)


@Connection.register("one_to_one")
class OneToOneConnection(Connection):
    """Neuron i of the source drives neuron i of the target with its own weight: ``I = s * w``."""

    has_weights = True

    def __init__(self, source: str = "", target: str = "", *, weight=1.0, **kw):
        super().__init__(source, target, **kw)
        if self.target_shape is not None and self.n_source != self.n_target:
            raise ConfigError(f"one_to_one needs equal sizes, got source '{source}' with "
                              f"{self.n_source} and target '{target}' with {self.n_target} neurons",
                              key=None)
        self.w = weights(init_weights((self.n_target,), weight, "weight"))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return (s.flatten(1) * self.w).view(s.shape[0], *self.out_shape)


@Connection.register("lateral", "all_to_all_but_self")
class LateralConnection(Connection):
    """Every neuron drives every other neuron of the same size group (no self-connection),
    with one shared ``weight``: ``I_j = weight * sum_{i != j} s_i``.

    Equal to a dense matrix ``weight * (1 - I)`` (BindsNET's D&C inhibition) in O(n) per step.
    """

    has_weights = True

    def __init__(self, source: str = "", target: str = "", *, weight: float = -17.5, **kw):
        super().__init__(source, target, **kw)
        if self.target_shape is not None and self.n_source != self.n_target:
            raise ConfigError(f"lateral needs equal sizes, got {self.n_source} and {self.n_target}",
                              key=None)
        self.w = weights(torch.tensor(float(weight)))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        flat = s.flatten(1)
        return (self.w * (flat.sum(1, keepdim=True) - flat)).view(s.shape[0], *self.out_shape)


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


@Connection.register("conv2d", "conv")
class Conv2dConnection(Connection):
    """2-D convolution: source (C_in, H, W) -> target current (C_out, H', W'),
    ``I = conv2d(s, w, stride, padding) (+ b)`` with one shared kernel ``w`` (C_out, C_in, k, k).

    C_out is ``out_channels`` or the target group's first dimension; H' = (H + 2 padding - k) //
    stride + 1. ``norm`` rescales each output channel's kernel so that its absolute sum equals
    ``norm``. ``bias`` adds a learned per-channel bias. Default init U(0, 0.3); ``init: fan_in``
    is torch's Conv2d default.
    """

    has_weights = True

    def __init__(self, source: str = "", target: str = "", *, kernel_size: int | list = 5, stride: int | list = 1,
                 padding: int | list = 0, out_channels: int | None = None, init=None, bias: bool = False, **kw):
        super().__init__(source, target, **kw)
        if len(self.source_shape) != 3:
            raise ConfigError(f"conv2d needs a source of shape [channels, height, width], got "
                              f"{list(self.source_shape)} (set n: [C, H, W] on group '{source}')", key=None)
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        c_in, h, w_ = self.source_shape
        out = [(d + 2 * p - k) // s + 1 for d, p, k, s in zip((h, w_), self.padding, self.kernel_size, self.stride)]
        if out_channels is None and self.target_shape is None:
            raise ConfigError("give out_channels (or the target group's n: [C_out, H', W'])", key="out_channels")
        c_out = int(out_channels) if out_channels is not None else self.target_shape[0]
        if min(out) < 1 or (self.target_shape is not None and list(self.target_shape) != [c_out, *out]):
            raise ConfigError(f"conv2d from {list(self.source_shape)} with kernel {self.kernel_size}, stride "
                              f"{self.stride}, padding {self.padding} gives maps of {out}: target group "
                              f"'{target}' needs n: [{c_out}, {out[0]}, {out[1]}], got "
                              f"{list(self.target_shape or ())}", key=None)
        self.target_shape = (c_out, *out)
        fan_in = c_in * self.kernel_size[0] * self.kernel_size[1]
        w = init_weights((c_out, c_in, *self.kernel_size), init, fan_in=fan_in)
        self.w = weights(w.clamp(self.wmin, self.wmax))
        self.b = _bias(c_out, bool(bias), fan_in)
        self.normalize()

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        x = s.reshape(s.shape[0], *self.source_shape)
        if x.dtype != self.w.dtype and not torch.is_autocast_enabled():
            x = x.to(self.w.dtype)
        return F.conv2d(x, self.w, self.b, stride=self.stride, padding=self.padding)

    def normalize(self) -> None:
        if self.norm is None:
            return
        total = self.w.abs().sum((1, 2, 3), keepdim=True)
        total = torch.where(total == 0, torch.ones_like(total), total)
        self.w.mul_(self.norm / total)
