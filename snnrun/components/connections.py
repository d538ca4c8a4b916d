"""Connections turn the source group's spikes of the last step into input current for the target.

Weights are plain tensors (buffers) for local learning rules; they are saved in checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from snnrun.errors import ConfigError
from snnrun.engine.kernels.split_matmul import split_fp16_matmul
from snnrun.registry import Registered, Registry, as_node


def init_weights(shape: tuple[int, ...], init, name: str = "init") -> torch.Tensor:
    """Initial weights from a config node: a number (constant) or
    ``{type: uniform, low, high}``, ``{type: normal, mean, std}``, ``{type: constant, value}``."""
    if isinstance(init, (int, float)):
        return torch.full(shape, float(init))
    init = as_node(init, name, default={"type": "uniform", "low": 0.0, "high": 0.3})
    kind = init.pop("type", "uniform")
    try:
        if kind == "uniform":
            low, high = float(init.pop("low", 0.0)), float(init.pop("high", 0.3))
            w = low + (high - low) * torch.rand(shape)
        elif kind == "normal":
            w = float(init.pop("mean", 0.0)) + float(init.pop("std", 0.1)) * torch.randn(shape)
        elif kind == "constant":
            w = torch.full(shape, float(init.pop("value")))
        else:
            raise ConfigError(f"unknown weight init '{kind}'. Allowed: uniform, normal, constant",
                              key=f"{name}.type")
    except KeyError as e:
        raise ConfigError(f"weight init '{kind}' needs {e}", key=name)
    if init:
        raise ConfigError(f"unknown option(s) {sorted(init)} for weight init '{kind}'",
                          key=name)
    return w


class Connection(Registered, nn.Module):
    """Base class: ``forward(source_spikes (B, *src)) -> current (B, *tgt)``.

    ``wmin``/``wmax`` bound the weights after every learning update (hard clamp, BindsNET's
    semantics). ``norm`` rescales, after each sample, every target neuron's incoming weights so
    that their absolute sum equals ``norm`` (Diehl & Cook's per-neuron weight normalisation).
    """

    registry: Registry = Registry("connection")

    def __init__(self, source: str, target: str, *, source_shape=(1,), target_shape=(1,),
                 wmin: float | None = None, wmax: float | None = None, norm: float | None = None):
        super().__init__()
        self.source, self.target = str(source), str(target)
        self.source_shape, self.target_shape = tuple(source_shape), tuple(target_shape)
        self.n_source, self.n_target = math.prod(self.source_shape), math.prod(self.target_shape)
        self.wmin = -math.inf if wmin is None else float(wmin)
        self.wmax = math.inf if wmax is None else float(wmax)
        if self.wmin > self.wmax:
            raise ConfigError(f"wmin ({wmin}) is larger than wmax ({wmax})", key="wmin")
        self.norm = None if norm is None else float(norm)

    def clamp(self) -> None:
        if math.isfinite(self.wmin) or math.isfinite(self.wmax):
            self.w.clamp_(self.wmin, self.wmax)

    def normalize(self) -> None:
        """Rescale each target neuron's incoming |w| to sum to ``norm`` (no-op without norm)."""


MATMULS = ("fp32", "fp16x2")


@Connection.register("dense", "all_to_all")
class DenseConnection(Connection):
    """All-to-all weights ``w`` of shape (n_source, n_target): ``I = s @ w``.

    ``matmul``: ``fp32`` (float32 product; TF32 where torch's matmul precision is ``high``) or
    ``fp16x2``: on CUDA, weights split into two fp16 parts and the product run on tensor cores
    with float32 accumulation, accurate to a relative 2^-22 for 0/1 spikes
    (:mod:`snnrun.engine.kernels.split_matmul`); needs |w| < 65504. The CPU always uses float32.
    """

    def __init__(self, source: str, target: str, *, init=None, matmul: str = "fp32", **kw):
        super().__init__(source, target, **kw)
        if matmul not in MATMULS:
            raise ConfigError(f"unknown matmul '{matmul}'. Allowed: {', '.join(MATMULS)}", key="matmul")
        if matmul == "fp16x2" and max(abs(self.wmin), abs(self.wmax)) >= 65504:
            raise ConfigError("fp16x2 needs weights bounded within fp16's range: set wmin and wmax to "
                              "|w| < 65504, or use matmul: fp32", key="matmul")
        self.matmul = matmul
        w = init_weights((self.n_source, self.n_target), init)
        self.register_buffer("w", w.clamp(self.wmin, self.wmax))
        self.normalize()

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        flat = s.reshape(s.shape[0], -1)
        if self.matmul == "fp16x2" and flat.is_cuda:
            out = split_fp16_matmul(flat, self.w)
        else:
            out = flat @ self.w
        return out.view(s.shape[0], *self.target_shape)

    def normalize(self) -> None:
        if self.norm is None:
            return
        total = self.w.abs().sum(0, keepdim=True)
        total = torch.where(total == 0, torch.ones_like(total), total)
        self.w.mul_(self.norm / total)


@Connection.register("one_to_one")
class OneToOneConnection(Connection):
    """Neuron i of the source drives neuron i of the target with its own weight: ``I = s * w``."""

    def __init__(self, source: str, target: str, *, weight=1.0, **kw):
        super().__init__(source, target, **kw)
        if self.n_source != self.n_target:
            raise ConfigError(f"one_to_one needs equal sizes, got source '{source}' with "
                              f"{self.n_source} and target '{target}' with {self.n_target} neurons",
                              key=None)
        self.register_buffer("w", init_weights((self.n_target,), weight, "weight"))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return (s.reshape(s.shape[0], -1) * self.w).view(s.shape[0], *self.target_shape)


@Connection.register("lateral", "all_to_all_but_self")
class LateralConnection(Connection):
    """Every neuron drives every other neuron of the same size group (no self-connection),
    with one shared ``weight``: ``I_j = weight * sum_{i != j} s_i``.

    Equal to a dense matrix ``weight * (1 - I)`` (BindsNET's D&C inhibition) in O(n) per step.
    """

    def __init__(self, source: str, target: str, *, weight: float = -17.5, **kw):
        super().__init__(source, target, **kw)
        if self.n_source != self.n_target:
            raise ConfigError(f"lateral needs equal sizes, got {self.n_source} and {self.n_target}",
                              key=None)
        self.register_buffer("w", torch.tensor(float(weight)))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        flat = s.reshape(s.shape[0], -1)
        return (self.w * (flat.sum(1, keepdim=True) - flat)).view(s.shape[0], *self.target_shape)


@Connection.register("conv2d", "conv")
class Conv2dConnection(Connection):
    """2-D convolution: source spikes (C_in, H, W) -> target current (C_out, H', W'),
    ``I = conv2d(s, w, stride, padding)`` with one shared kernel ``w`` (C_out, C_in, k, k).

    The target group's ``n`` must be [C_out, H', W'] with H' = (H + 2 padding - k) // stride + 1.
    ``norm`` rescales each output channel's kernel so that its absolute sum equals ``norm``.
    """

    def __init__(self, source: str, target: str, *, kernel_size: int = 5, stride: int = 1, padding: int = 0,
                 init=None, **kw):
        super().__init__(source, target, **kw)
        if len(self.source_shape) != 3:
            raise ConfigError(f"conv2d needs a source group of shape [channels, height, width], got "
                              f"{list(self.source_shape)} (set n: [C, H, W] on group '{source}')", key=None)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        c_in, h, w_ = self.source_shape
        out = [(d + 2 * self.padding - self.kernel_size) // self.stride + 1 for d in (h, w_)]
        c_out = self.target_shape[0]
        if len(self.target_shape) != 3 or list(self.target_shape[1:]) != out or min(out) < 1:
            raise ConfigError(f"conv2d from {list(self.source_shape)} with kernel {self.kernel_size}, stride "
                              f"{self.stride}, padding {self.padding} gives maps of {out}: target group "
                              f"'{target}' needs n: [C_out, {out[0]}, {out[1]}], got {list(self.target_shape)}",
                              key=None)
        w = init_weights((c_out, c_in, self.kernel_size, self.kernel_size), init)
        self.register_buffer("w", w.clamp(self.wmin, self.wmax))
        self.normalize()

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        x = s.reshape(s.shape[0], *self.source_shape).to(self.w.dtype)
        return torch.nn.functional.conv2d(x, self.w, stride=self.stride, padding=self.padding)

    def normalize(self) -> None:
        if self.norm is None:
            return
        total = self.w.abs().sum((1, 2, 3), keepdim=True)
        total = torch.where(total == 0, torch.ones_like(total), total)
        self.w.mul_(self.norm / total)
