"""The connection base class and weight initialisation.

A connection maps its source group's activity ``(B, *source_shape)`` to input current for its
target ``(B, *out_shape)``. Connections with weights (dense, conv2d, one_to_one, lateral) keep
them in ``w``; stateless operations (pooling, flatten, batch norm, dropout) are connections too,
so a network is one graph of neuron groups joined by connections, whatever trains it. A chain
of operations between two groups (pool -> conv -> batch norm) is one :class:`Chain` connection.

``delay`` (time steps, 0 or 1) says which step of the source drives the target: 1 is BindsNET's
semantics (the spikes of the last step, the default of a network), 0 the same step (feed-forward
models trained by gradient, SpikingJelly's layer-by-layer semantics).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from snnrun.errors import ConfigError
from snnrun.model_schema import CONNECTION_PARAMS
from snnrun.registry import Registered, Registry, as_node

DELAYS = (0, 1)


def init_weights(shape: tuple[int, ...], init, name: str = "init", fan_in: int | None = None) -> torch.Tensor:
    """Initial weights from a config node: a number (constant) or
    ``{type: uniform, low, high}``, ``{type: normal, mean, std}``, ``{type: constant, value}``,
    ``{type: fan_in}`` (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for Linear and Conv2d)."""
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
        elif kind == "fan_in":
            bound = 1.0 / math.sqrt(fan_in or shape[0])
            w = (torch.rand(shape) * 2.0 - 1.0) * bound
        else:
            raise ConfigError(f"unknown weight init '{kind}'. Allowed: uniform, normal, constant, fan_in",
                              key=f"{name}.type")
    except KeyError as e:
        raise ConfigError(f"weight init '{kind}' needs {e}", key=name)
    if init:
        raise ConfigError(f"unknown option(s) {sorted(init)} for weight init '{kind}'", key=name)
    return w


class Connection(Registered, nn.Module):
    """Base class: ``forward(source (B, *source_shape)) -> current (B, *out_shape)``.

    ``target_shape`` is the target group's shape when the config gives it (checked against what
    the connection produces) or None (the target group takes ``out_shape``). ``wmin``/``wmax``
    bound the weights after every local learning update (hard clamp, BindsNET's semantics).
    ``norm`` rescales, after each sample, every target neuron's incoming weights so that their
    absolute sum equals ``norm`` (Diehl & Cook's per-neuron weight normalisation).
    ``learn: false`` keeps a gradient learner from training this connection.
    """

    registry: Registry = Registry("connection", ranges=CONNECTION_PARAMS)  # snnrun/model_schema.py
    has_weights = False

    def __init__(self, source: str = "", target: str = "", *, source_shape=(1,), target_shape=None,
                 wmin: float | None = None, wmax: float | None = None, norm: float | None = None,
                 delay: int | None = None, learn: bool = True):
        super().__init__()
        self.source, self.target = str(source), str(target)
        self.source_shape = tuple(int(d) for d in source_shape)
        self.target_shape = None if target_shape is None else tuple(int(d) for d in target_shape)
        self.n_source = math.prod(self.source_shape)
        self.wmin = -math.inf if wmin is None else float(wmin)
        self.wmax = math.inf if wmax is None else float(wmax)
        if self.wmin > self.wmax:
            raise ConfigError(f"wmin ({wmin}) is larger than wmax ({wmax})", key="wmin")
        self.norm = None if norm is None else float(norm)
        if delay is not None and int(delay) not in DELAYS:
            raise ConfigError(f"delay is 0 (same step) or 1 (last step's spikes), got {delay}", key="delay")
        self.delay = None if delay is None else int(delay)
        self.learn = bool(learn)

    # -- shapes ----------------------------------------------------------------------------
    @property
    def out_shape(self) -> tuple[int, ...]:
        """The shape of the current this connection produces (per sample)."""
        return self.target_shape if self.target_shape is not None else self.source_shape

    @property
    def n_target(self) -> int:
        return math.prod(self.out_shape)

    def need_dims(self, dims: int, hint: str) -> None:
        if len(self.source_shape) != dims:
            raise ConfigError(f"{self.registered_name} takes inputs of {dims} dimension(s) per sample, but "
                              f"its source has shape {list(self.source_shape)}{hint}", key=None)

    # -- simulation ------------------------------------------------------------------------
    def forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor:
        """All T steps at once, ``(T, B, *source_shape) -> (T, B, *out_shape)``, merging T into
        the batch (connections whose state spans steps, like dropout, override this)."""
        T, B = x_seq.shape[:2]
        return self(x_seq.flatten(0, 1)).unflatten(0, (T, B))

    def reset(self) -> None:
        """Start a new presentation (connections with per-sample state override this)."""

    def set_trainable(self, on: bool) -> None:
        """Whether a gradient learner trains this connection's parameters."""
        for p in self.parameters(recurse=False):
            p.requires_grad_(on)

    # -- local learning --------------------------------------------------------------------
    def clamp(self) -> None:
        if math.isfinite(self.wmin) or math.isfinite(self.wmax):
            self.w.clamp_(self.wmin, self.wmax)

    def normalize(self) -> None:
        """Rescale each target neuron's incoming |w| to sum to ``norm`` (no-op without norm)."""


def weights(w: torch.Tensor) -> nn.Parameter:
    """A weight tensor as a parameter: frozen (local rules change it in place) until a gradient
    learner switches it on with :meth:`Connection.set_trainable`."""
    return nn.Parameter(w, requires_grad=False)
