"""Izhikevich (2003) neurons: a quadratic membrane and a recovery variable."""

from __future__ import annotations

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel

# Izhikevich (2003), Fig. 2: (a, b, c, d) of the cortical and thalamic firing classes
CELL_TYPES = {
    "rs": (0.02, 0.2, -65.0, 8.0),    # regular spiking (excitatory), adapting
    "ib": (0.02, 0.2, -55.0, 4.0),    # intrinsically bursting
    "ch": (0.02, 0.2, -50.0, 2.0),    # chattering
    "fs": (0.1, 0.2, -65.0, 2.0),     # fast spiking (inhibitory), no adaptation
    "lts": (0.02, 0.25, -65.0, 2.0),  # low-threshold spiking
    "tc": (0.02, 0.25, -65.0, 0.05),  # thalamo-cortical
    "rz": (0.1, 0.26, -65.0, 2.0),    # resonator
}


@NeuronModel.register("izhikevich", "izh")
class IzhikevichNodes(NeuronModel):
    """Izhikevich neurons: v' = 0.04 v^2 + 5 v + 140 - u + I,  u' = a (b v - u).

    At v >= thresh: v <- c, u <- u + d. v is integrated in two half steps of dt/2 per step
    (Izhikevich's own scheme, as BindsNET), u in one; ``x`` is the current I of this step.
    v is capped at thresh within the step so that a coarse step's overshoot does not kick u.

    Parameters per neuron: ``cell`` picks a named firing class (rs, ib, ch, fs, lts, tc, rz);
    without it the group is BindsNET's random excitatory/inhibitory mix: a fraction
    ``excitatory`` of the neurons get a=0.02, b=0.2, c=-65+15r^2, d=8-6r^2, the rest
    a=0.02+0.08r, b=0.25-0.05r, c=-65, d=2 (r uniform in [0, 1)). Explicit a, b, c, d override.
    BindsNET also wires a random recurrent matrix inside the group; here that is a
    connection's job, so the group has none. Spike threshold: 30 mV (paper; BindsNET uses 45).
    """

    def __init__(self, n=1, *, cell: str | None = None, excitatory: float = 1.0,
                 a: float | None = None, b: float | None = None, c: float | None = None,
                 d: float | None = None, thresh: float = 30.0, rest: float = -65.0,
                 lbound: float | None = None, **kw):
        super().__init__(n, **kw)
        self.thresh, self.rest = float(thresh), float(rest)
        self.lbound = None if lbound is None else float(lbound)
        self.cell = cell
        if cell is not None:
            if str(cell).lower() not in CELL_TYPES:
                raise ConfigError(f"unknown Izhikevich cell type '{cell}'. Allowed: "
                                  f"{', '.join(CELL_TYPES)} (or null for the random mix)", key="cell")
            params = [torch.full(self.shape, p) for p in CELL_TYPES[str(cell).lower()]]
        else:
            if not 0.0 <= excitatory <= 1.0:
                raise ConfigError(f"excitatory is a fraction in [0, 1], got {excitatory}", key="excitatory")
            params = self._random_mix(float(excitatory))
        for name, value, given in zip("abcd", params, (a, b, c, d)):
            self.register_buffer(name, torch.full(self.shape, float(given)) if given is not None else value)

    def _random_mix(self, excitatory: float):
        r = torch.rand(self.shape)
        exc = (torch.arange(self.n) < int(self.n * excitatory)).reshape(self.shape)
        a = torch.where(exc, torch.full_like(r, 0.02), 0.02 + 0.08 * r)
        b = torch.where(exc, torch.full_like(r, 0.2), 0.25 - 0.05 * r)
        c = torch.where(exc, -65.0 + 15.0 * r ** 2, torch.full_like(r, -65.0))
        d = torch.where(exc, 8.0 - 6.0 * r ** 2, torch.full_like(r, 2.0))
        return a, b, c, d

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.rest)
        self.u = self.b * self.v

    def step(self, x: torch.Tensor) -> torch.Tensor:
        h = 0.5 * self.dt
        for _ in range(2):  # two half steps for v: the quadratic term is stiff near threshold
            self.v = self.v + h * (0.04 * self.v ** 2 + 5.0 * self.v + 140.0 - self.u + x)
            # cap at the spike peak: the overshoot of a coarse step would otherwise feed u
            self.v = self.v.clamp(max=self.thresh)
        self.u = self.u + self.dt * self.a * (self.b * self.v - self.u)
        fired = self.v >= self.thresh
        self.v = torch.where(fired, self.c.expand_as(self.v), self.v)
        self.u = torch.where(fired, self.u + self.d, self.u)
        if self.lbound is not None:
            self.v = self.v.clamp_min(self.lbound)
        return fired.to(self.dtype)


@NeuronModel.register("spaic.izh", source="spaic")
class SpaicIzhikevichNodes(NeuronModel):
    """SPAIC's Izhikevich model (spaic/Neuron/Neuron.py class IZHModel): one Euler step for v,
    and u advanced by a per step (not a dt).

    Each step, from (v, u) of the last step::

        v' = v + dt (0.04 v^2 + 5 v + 140 - u + x)
        u' = u + a (b v - u)                       (a per step, as SPAIC: no dt factor)
        s  = v' > v_th
        v <- v_reset where s, else v';   u <- u' + d s

    Defaults (SPAIC 0.6.3): a = 0.02, b = 0.2, d = 8, v_th = 30 mV, v_reset = -65 mV (SPAIC's
    Vreset, the paper's c); v starts at -65 mV and u at 1.0. ``izhikevich`` (alias ``izh``) is
    snnrun's scheme: half steps for v, u with dt, named cell types.
    """

    def __init__(self, n=1, *, a: float = 0.02, b: float = 0.2, d: float = 8.0, v_th: float = 30.0,
                 v_reset: float = -65.0, **kw):
        super().__init__(n, **kw)
        self.a, self.b, self.d = float(a), float(b), float(d)
        self.v_th, self.v_reset = float(v_th), float(v_reset)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(-65.0)
        self.u = self.state_tensor(1.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v = self.v + self.dt * (0.04 * self.v ** 2 + 5.0 * self.v + 140.0 - self.u + x)
        u = self.u + self.a * (self.b * self.v - self.u)
        fired = v > self.v_th
        s = fired.to(self.dtype)
        self.v = torch.where(fired, torch.full_like(v, self.v_reset), v)
        self.u = u + self.d * s
        return s
