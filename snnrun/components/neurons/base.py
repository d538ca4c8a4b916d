"""The neuron-group base class: state, spike traces, and the charge -> fire -> reset step."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from snnrun.errors import ConfigError
from snnrun.engine.random_keys import counter_uniform
from snnrun.registry import Registered, Registry


def _size(d: Any, n: Any) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, float)) or float(d) != int(d):
        raise ConfigError(f"'n' must be a positive whole size or a list of them, got {n!r}", key="n")
    return int(d)


def as_shape(n: Any) -> tuple[int, ...]:
    shape = tuple(_size(d, n) for d in n) if isinstance(n, (list, tuple)) else (_size(n, n),)
    if not shape or any(d <= 0 for d in shape):
        raise ConfigError(f"'n' must be a positive size or a list of positive sizes, got {n!r}", key="n")
    return shape


class NeuronModel(Registered, nn.Module):
    """A group of ``n`` neurons simulated in batches, state ``(B, n)``.

    Subclasses implement :meth:`step` (input current -> spikes, updating ``v`` and friends).
    This base keeps the spikes ``s`` of the last step and, when ``traces`` is on, a
    presynaptic/postsynaptic trace per neuron, updated after each step (BindsNET's semantics)::

        x <- x * exp(-dt / tc_trace)
        x <- x + trace_scale * s            (traces_additive: true)
        x <- trace_scale where s else x     (traces_additive: false, "set to one")

    ``sum_input`` keeps the running sum of the input current. Learned state that must survive
    samples (e.g. adaptive thresholds) lives in buffers; per-sample state (v, s, x, refractory
    counters) is created by :meth:`reset_state` and is not part of the state dict.
    While ``self.training`` is False (``network.eval()``) adaptive parameters are frozen.
    """

    registry: Registry = Registry("neuron model")

    def __init__(
        self,
        n: int | list[int] = 1,
        *,
        dt: float = 1.0,
        traces: bool = False,
        traces_additive: bool = False,
        tc_trace: float = 20.0,
        trace_scale: float = 1.0,
        sum_input: bool = False,
    ):
        super().__init__()
        self.shape = as_shape(n)
        self.n = math.prod(self.shape)
        self.dt = float(dt)
        self.traces = bool(traces)
        self.traces_additive = bool(traces_additive)
        self.tc_trace = float(tc_trace)
        self.trace_scale = float(trace_scale)
        self.trace_decay = math.exp(-self.dt / self.tc_trace) if self.tc_trace > 0 else 0.0
        self.sum_input = bool(sum_input)
        self.batch_size = 0
        self.s: torch.Tensor = torch.zeros(0)
        self.x: torch.Tensor = torch.zeros(0)
        # counter-based random numbers on CUDA (batch_rand_like): the draw number lives on the
        # device so captured graphs advance it, and in checkpoints so a resumed run continues
        # the stream; the seed follows torch's (a Network gives each of its groups its own)
        self.register_buffer("rng_draws", torch.zeros((), dtype=torch.int64))
        self.rng_seed = torch.initial_seed() % 2**62

    # -- state -----------------------------------------------------------------------------
    def __setattr__(self, name, value):
        # per-sample state (v, s, x, refractory counters ...) is reassigned every time step;
        # nn.Module.__setattr__'s parameter/buffer bookkeeping cost more than the arithmetic on
        # the CPU path. A plain tensor replacing a plain attribute goes straight to __dict__,
        # which is where nn.Module would have put it too.
        if type(value) is torch.Tensor and name in self.__dict__:
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def state_tensor(self, value: float = 0.0, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A fresh ``(B, *shape)`` tensor on this group's device."""
        return torch.full((self.batch_size, *self.shape), value, device=self.device,
                          dtype=dtype or self.dtype)

    @property
    def device(self) -> torch.device:
        return self._device_dtype()[0]

    @property
    def dtype(self) -> torch.dtype:
        return self._device_dtype()[1]

    def _device_dtype(self):
        for t in self.buffers():
            if t.is_floating_point():
                return t.device, t.dtype
        return getattr(self, "_dev", torch.device("cpu")), getattr(self, "_dtype", torch.float32)

    def _apply(self, fn, recurse=True):
        # remember device/dtype for groups that own no buffers (e.g. input nodes)
        probe = fn(torch.zeros(0, device=getattr(self, "_dev", "cpu"),
                               dtype=getattr(self, "_dtype", torch.float32)))
        self._dev, self._dtype = probe.device, probe.dtype
        return super()._apply(fn, recurse)

    # -- batch-shared state (a data-parallel run sums it over ranks: snnrun/engine/data_parallel.py) ------
    data_parallel = None

    def batch_sum(self, t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Sum over the batch (dim 0) of a per-sample quantity that updates shared state (theta)."""
        total = t.sum(0, dtype=dtype)
        return total if self.data_parallel is None else self.data_parallel.all_reduce_(total)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the draw counter existed still load (it starts at 0)
        state_dict.setdefault(prefix + "rng_draws", self.rng_draws.detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def batch_rand_like(self, t: torch.Tensor) -> torch.Tensor:
        """Uniform [0, 1) numbers shaped like ``t`` whose rows do not depend on the rank that
        simulates them. On CUDA they are counter-based (:mod:`snnrun.engine.random_keys`), which fuse
        into a compiled step instead of costing a generator kernel per step."""
        dp = self.data_parallel
        if not t.is_cuda:
            return torch.rand_like(t) if dp is None else dp.rand_rows(t)
        self.rng_draws.add_(1)
        rows = t.shape[0] if dp is None else dp.global_n
        keys = counter_uniform((rows, *t.shape[1:]), self.rng_draws, self.rng_seed).to(t.dtype)
        return keys if dp is None else keys[dp.rows]

    def batch_any(self, t: torch.Tensor) -> bool:
        return bool(t.any()) if self.data_parallel is None else self.data_parallel.any_(t)

    def reset_state(self, batch_size: int) -> None:
        """Start a new sample: per-sample state back to its initial value."""
        self.batch_size = int(batch_size)
        self.state_dtype = self.dtype
        self.s = self.state_tensor()
        self.x = self.state_tensor() if self.traces else self.x
        if self.sum_input:
            self.summed = self.state_tensor()
        self.reset_dynamics()

    def reset_dynamics(self) -> None:
        """Subclasses create their per-sample variables (v, refractory counters ...) here."""

    # -- dynamics --------------------------------------------------------------------------
    def step(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.step(x)
        self.s = s
        if self.traces:
            if self.traces_additive:
                self.x = self.x * self.trace_decay + self.trace_scale * s
            else:
                self.x = (self.x * self.trace_decay).masked_fill_(s > 0, self.trace_scale)
        if self.sum_input:
            self.summed = self.summed + x
        return s

    def extra_repr(self) -> str:
        return f"n={self.shape if len(self.shape) > 1 else self.n}, dt={self.dt}"


@NeuronModel.register("input", source="bindsnet")
class Input(NeuronModel):
    """Input nodes: the spikes are the input, s[t] = x[t] (a group fed by an encoder)."""

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.state_dtype)
