"""Hodgkin-Huxley (1952) squid-axon neurons, in the modern convention (rest near -65 mV)."""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel


def _vtrap(x: torch.Tensor, y: float) -> torch.Tensor:
    """x / (1 - exp(-x / y)), continuous at x = 0 (value y there)."""
    small = x.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, torch.full_like(x, y), safe / -torch.expm1(-safe / y))


@NeuronModel.register("hh", "hodgkin_huxley")
class HodgkinHuxleyNodes(NeuronModel):
    """Hodgkin-Huxley: C v' = I - g_na m^3 h (v - e_na) - g_k n^4 (v - e_k) - g_l (v - e_l).

    Gates z in {m, h, n} follow z' = alpha_z(v) (1 - z) - beta_z(v) z with (v in mV, 1/ms)::

        alpha_m = 0.1 (v + 40) / (1 - exp(-(v + 40) / 10))     beta_m = 4 exp(-(v + 65) / 18)
        alpha_h = 0.07 exp(-(v + 65) / 20)                     beta_h = 1 / (1 + exp(-(v + 35) / 10))
        alpha_n = 0.01 (v + 55) / (1 - exp(-(v + 55) / 10))    beta_n = 0.125 exp(-(v + 65) / 80)

    ``x`` is the injected current density in uA/cm^2 (held over the step). Each dt is split
    into sub-steps of at most ``max_substep`` ms: exponential Euler for the gates (exact for a
    frozen v, so they stay in [0, 1]) and Euler for v. A spike is an upward crossing of
    ``thresh`` (0 mV); there is no reset, the channels repolarise the membrane. Gates start at
    their steady state at ``v_init``. Repetitive firing needs a step of roughly 6.3 uA/cm^2.
    """

    def __init__(self, n=1, *, g_na: float = 120.0, g_k: float = 36.0, g_l: float = 0.3,
                 e_na: float = 50.0, e_k: float = -77.0, e_l: float = -54.387, c_m: float = 1.0,
                 v_init: float = -65.0, thresh: float = 0.0, max_substep: float = 0.025, **kw):
        super().__init__(n, **kw)
        self.g_na, self.g_k, self.g_l = float(g_na), float(g_k), float(g_l)
        self.e_na, self.e_k, self.e_l = float(e_na), float(e_k), float(e_l)
        if not c_m > 0:
            raise ConfigError(f"c_m must be > 0 uF/cm^2, got {c_m}", key="c_m")
        if not max_substep > 0:
            raise ConfigError(f"max_substep must be > 0 ms, got {max_substep}", key="max_substep")
        self.c_m, self.v_init, self.thresh = float(c_m), float(v_init), float(thresh)
        self.substeps = max(1, math.ceil(self.dt / float(max_substep) - 1e-9))
        self.h_sub = self.dt / self.substeps

    @staticmethod
    def rates(v: torch.Tensor):
        """(alpha, beta) of the m, h and n gates at voltage v."""
        am = 0.1 * _vtrap(v + 40.0, 10.0)
        bm = 4.0 * torch.exp(-(v + 65.0) / 18.0)
        ah = 0.07 * torch.exp(-(v + 65.0) / 20.0)
        bh = 1.0 / (1.0 + torch.exp(-(v + 35.0) / 10.0))
        an = 0.01 * _vtrap(v + 55.0, 10.0)
        bn = 0.125 * torch.exp(-(v + 65.0) / 80.0)
        return (am, bm), (ah, bh), (an, bn)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.v_init)
        (am, bm), (ah, bh), (an, bn) = self.rates(self.v)
        self.m, self.h, self.n_gate = am / (am + bm), ah / (ah + bh), an / (an + bn)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        fired = torch.zeros_like(self.v, dtype=torch.bool)
        k = self.h_sub
        for _ in range(self.substeps):
            before = self.v
            i_ion = (self.g_na * self.m ** 3 * self.h * (self.v - self.e_na)
                     + self.g_k * self.n_gate ** 4 * (self.v - self.e_k) + self.g_l * (self.v - self.e_l))
            gates = self.rates(self.v)
            self.v = self.v + k * (x - i_ion) / self.c_m
            # exponential Euler: z -> z_inf + (z - z_inf) exp(-k (alpha + beta))
            new = []
            for z, (a, b) in zip((self.m, self.h, self.n_gate), gates):
                tot = a + b
                new.append(a / tot + (z - a / tot) * torch.exp(-k * tot))
            self.m, self.h, self.n_gate = new
            fired |= (before < self.thresh) & (self.v >= self.thresh)
        return fired.to(self.dtype)


@NeuronModel.register("spaic.hh", source="spaic")
class SpaicHodgkinHuxleyNodes(NeuronModel):
    """SPAIC's Hodgkin-Huxley model (spaic/Neuron/Neuron.py class HodgkinHuxleyModel): the 1952
    convention (rest at 0 mV, depolarisation positive), one Euler step per dt.

    Each step, with u = v + v_reset (SPAIC's offset Vreset, default 0) and the rates at u::

        alpha_m = 0.1 (25 - u) / (exp((25 - u) / 10) - 1)    beta_m = 4 exp(-u / 18)
        alpha_n = 0.01 (10 - u) / (exp((10 - u) / 10) - 1)   beta_n = 0.125 exp(-u / 80)
        alpha_h = 0.07 exp(-u / 20)                           beta_h = 1 / (exp((30 - u) / 10) + 1)
        z <- z + dt (alpha_z (1 - z) - beta_z z)              z = m, n, h
        v <- v + x - dt (g_na m^3 h (v - e_na) + g_k n^4 (v - e_k) + g_l (v - e_l))
        s  = v > v_th

    The input is added to v as it comes (SPAIC's Isyn, not scaled by dt), and a neuron emits a
    spike at every step its v is above v_th (1 mV by default), not only at the upward crossing.
    Defaults (SPAIC 0.6.3): g_na = 120, g_k = 36, g_l = 0.3, e_na = 120, e_k = -12, e_l = 10.6;
    v starts at 0, m = n = 0.5, h = 0.06. The rate constants are the paper's (SPAIC's defaults);
    0/0 at u = 25 or 10 takes its limit. ``hh`` is snnrun's modern-convention model.
    """

    def __init__(self, n=1, *, g_na: float = 120.0, g_k: float = 36.0, g_l: float = 0.3, e_na: float = 120.0,
                 e_k: float = -12.0, e_l: float = 10.6, v_th: float = 1.0, v_reset: float = 0.0, **kw):
        super().__init__(n, **kw)
        self.g_na, self.g_k, self.g_l = float(g_na), float(g_k), float(g_l)
        self.e_na, self.e_k, self.e_l = float(e_na), float(e_k), float(e_l)
        self.v_th, self.v_reset = float(v_th), float(v_reset)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)
        self.m, self.n_gate, self.h = self.state_tensor(0.5), self.state_tensor(0.5), self.state_tensor(0.06)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        u, dt = self.v + self.v_reset, self.dt
        am, bm = 0.1 * _vtrap(u - 25.0, 10.0), 4.0 * torch.exp(-u / 18.0)
        an, bn = 0.01 * _vtrap(u - 10.0, 10.0), 0.125 * torch.exp(-u / 80.0)
        ah, bh = 0.07 * torch.exp(-u / 20.0), 1.0 / (torch.exp((30.0 - u) / 10.0) + 1.0)
        self.m = self.m + dt * (am * (1.0 - self.m) - bm * self.m)
        self.n_gate = self.n_gate + dt * (an * (1.0 - self.n_gate) - bn * self.n_gate)
        self.h = self.h + dt * (ah * (1.0 - self.h) - bh * self.h)
        i_ion = (self.g_na * self.m ** 3 * self.h * (self.v - self.e_na)
                 + self.g_k * self.n_gate ** 4 * (self.v - self.e_k) + self.g_l * (self.v - self.e_l))
        self.v = self.v + x - dt * i_ion
        return (self.v > self.v_th).to(self.dtype)
