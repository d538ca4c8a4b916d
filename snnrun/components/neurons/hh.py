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
