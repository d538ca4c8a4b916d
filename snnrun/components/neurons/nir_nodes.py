"""Neuron nodes with NIR's equations (Neuromorphic Intermediate Representation, nir 1.0), per neuron.

NIR states its neurons in continuous time (nir.ir.neuron)::

    LIF      tau dv/dt = (v_leak - v) + r I
    IF           dv/dt = r I
    CubaLIF  tau_syn dI/dt = -I + w_in S;   tau_mem dv/dt = (v_leak - v) + r I
    all:     z = 1 where v crosses v_threshold, then v <- v_reset where z = 1 (hard reset)

These nodes run them with forward Euler at a fixed step ``nir_dt`` (NIR's time unit, seconds by
the NIR convention; one snnrun step), which is how snnrun's own discrete models are exported
(snnrun/interop/nir_export.py), so an export read back here gives the same spikes. With
``a = nir_dt / tau`` and ``b = nir_dt r / tau`` (``b = nir_dt r`` for IF) per neuron::

    LIF   v <- v + a ((v_leak - v) + I)        where b == a everywhere (r = 1: SpikingJelly's decay_input)
          v <- v + a (v_leak - v) + b I         otherwise
    IF    v <- v + b I
    CubaLIF  i <- i + a_syn (-i) + b_syn S  (b_syn = a_syn w_in);   then v as LIF with the new i

then spike where ``v >= v_threshold`` (snnrun's Heaviside; NIR writes ``v > v_threshold``, which
differs only where v lands exactly on the threshold) and hard reset. The state starts at v = 0,
i = 0 (what NIR importers assume). ``a`` and ``b`` are computed in float64 and stored as buffers,
so the exported and re-imported step factors are bit-identical. Spikes pass through the node's
surrogate gradient, so an imported network can be fine-tuned by surrogate BPTT (the parameters of
the neurons stay fixed; the connections train).

Per-neuron values come from the NIR file (``nir_to_network`` loads them into the buffers); the
config's scalars are the defaults every neuron starts with.
"""

from __future__ import annotations

import torch

from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.trainable import TrainableNode
from snnrun.errors import ConfigError


def _positive(value: float, name: str) -> float:
    if not float(value) > 0:
        raise ConfigError(f"must be > 0, got {value}", key=name)
    return float(value)


class NIRNode(TrainableNode):
    """Shared parts: per-neuron threshold and reset buffers, v starting at 0, hard reset."""

    def __init__(self, n=1, *, v_threshold: float = 1.0, v_reset: float = 0.0, nir_dt: float = 1e-4,
                 surrogate="atan", detach_reset: bool = True, **kw):
        if v_reset is None:
            raise ConfigError("NIR neurons reset to v_reset (hard reset); a number is needed", key="v_reset")
        super().__init__(n, v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate,
                         detach_reset=detach_reset, **kw)
        self.nir_dt = _positive(nir_dt, "nir_dt")
        self.register_buffer("v_th", torch.full(self.shape, float(v_threshold)))
        self.register_buffer("v_rst", torch.full(self.shape, float(v_reset)))

    @property
    def v_init(self) -> float:
        return 0.0

    def threshold(self) -> torch.Tensor:
        return self.v_th

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        s = self.reset_spike(spike)
        self.v = self.v - s * (self.v - self.v_rst)

    def set_values(self, **values) -> None:
        """Per-neuron values (arrays of the group's shape, or scalars) into the named buffers."""
        for name, value in values.items():
            buf = getattr(self, name)
            t = torch.as_tensor(value, dtype=torch.float64)
            if t.numel() != 1 and tuple(t.shape) != tuple(buf.shape):
                raise ConfigError(f"{name} has shape {list(t.shape)}, the group {list(buf.shape)}", key=name)
            buf.copy_(t.to(buf.dtype).expand_as(buf))


@NeuronModel.register("nir_lif")
class NIRLIF(NIRNode):
    """NIR's LIF, ``tau dv/dt = (v_leak - v) + r I``, by forward Euler with step ``nir_dt`` per neuron.

    ``v <- v + a ((v_leak - v) + I)`` where r = 1 (a = nir_dt / tau), else
    ``v <- v + a (v_leak - v) + b I`` (b = nir_dt r / tau); spike at v >= v_threshold, reset to
    v_reset, v starts at 0 (nir.ir.neuron.LIF; module docstring).
    """

    def __init__(self, n=1, *, tau: float = 2e-4, r: float = 1.0, v_leak: float = 0.0, **kw):
        super().__init__(n, **kw)
        tau = _positive(tau, "tau")
        self.register_buffer("a", torch.full(self.shape, self.nir_dt / tau))
        self.register_buffer("b", torch.full(self.shape, self.nir_dt * float(r) / tau))
        self.register_buffer("v_leak", torch.full(self.shape, float(v_leak)))

    def set_nir(self, tau, r, v_leak, v_threshold, v_reset) -> None:
        """Per-neuron NIR parameters (numpy arrays in the NIR time unit)."""
        tau64, r64 = (torch.as_tensor(x, dtype=torch.float64) for x in (tau, r))
        if not bool((tau64 > 0).all()):
            raise ConfigError("every tau must be > 0", key="tau")
        self.set_values(a=self.nir_dt / tau64, b=self.nir_dt * r64 / tau64, v_leak=v_leak,
                        v_th=v_threshold, v_rst=v_reset)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        if torch.equal(self.a, self.b):
            self.v = self.v + self.a * ((self.v_leak - self.v) + x)
        else:
            self.v = self.v + self.a * (self.v_leak - self.v) + self.b * x

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nir_dt={self.nir_dt}"


@NeuronModel.register("nir_if")
class NIRIF(NIRNode):
    """NIR's IF, ``dv/dt = r I``, by forward Euler: ``v <- v + b I`` with b = nir_dt r per neuron;
    spike at v >= v_threshold, reset to v_reset, v starts at 0 (nir.ir.neuron.IF)."""

    def __init__(self, n=1, *, r: float = 1e4, **kw):
        super().__init__(n, **kw)
        self.register_buffer("b", torch.full(self.shape, self.nir_dt * float(r)))

    def set_nir(self, r, v_threshold, v_reset) -> None:
        self.set_values(b=self.nir_dt * torch.as_tensor(r, dtype=torch.float64), v_th=v_threshold,
                        v_rst=v_reset)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + self.b * x


@NeuronModel.register("nir_cuba_lif")
class NIRCubaLIF(NIRLIF):
    """NIR's current-based LIF by forward Euler, per neuron (nir.ir.neuron.CubaLIF)::

        tau_syn dI/dt = -I + w_in S      ->  i <- i + a_syn (-i) + b_syn S   (a_syn = nir_dt / tau_syn, b_syn = a_syn w_in)
        tau_mem dv/dt = (v_leak - v) + r I  ->  v as :class:`NIRLIF` driven by the new i

    spike at v >= v_threshold, reset v to v_reset (i is not reset); v and i start at 0.
    """

    def __init__(self, n=1, *, tau_syn: float = 2e-4, w_in: float = 1.0, tau_mem: float = 2e-4, **kw):
        super().__init__(n, tau=tau_mem, **kw)
        tau_syn = _positive(tau_syn, "tau_syn")
        self.register_buffer("a_syn", torch.full(self.shape, self.nir_dt / tau_syn))
        self.register_buffer("b_syn", torch.full(self.shape, self.nir_dt * float(w_in) / tau_syn))

    def set_nir(self, tau_syn, tau_mem, r, v_leak, v_threshold, v_reset, w_in) -> None:
        ts = torch.as_tensor(tau_syn, dtype=torch.float64)
        if not bool((ts > 0).all()):
            raise ConfigError("every tau_syn must be > 0", key="tau_syn")
        super().set_nir(tau_mem, r, v_leak, v_threshold, v_reset)
        self.set_values(a_syn=self.nir_dt / ts, b_syn=self.nir_dt * torch.as_tensor(w_in, dtype=torch.float64) / ts)

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.i = self.state_tensor(0.0)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.i = self.i + self.a_syn * (-self.i) + self.b_syn * x
        super().neuronal_charge(self.i)
