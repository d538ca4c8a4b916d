"""Adaptive exponential integrate-and-fire neurons (Brette & Gerstner 2005)."""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel


@NeuronModel.register("adex", "aeif")
class AdExNodes(NeuronModel):
    """AdEx: C v' = -g_l (v - e_l) + g_l delta_t exp((v - v_t) / delta_t) - w + I,
    tau_w w' = a (v - e_l) - w.

    At v >= v_peak: v <- v_reset, w <- w + b. Units: pF, nS, mV, ms, pA; ``x`` is the current
    I in pA (held over the step). Defaults are Brette & Gerstner's (2005) tonic cell. Each dt
    is split into Euler sub-steps of at most ``max_substep`` ms (the exponential term is
    stiff). Under constant I (no spikes yet) the neuron fires iff I exceeds the rheobase
    (g_l + a) (v_t - e_l - delta_t + delta_t ln(1 + a / g_l)).
    """

    def __init__(self, n=1, *, c_m: float = 281.0, g_l: float = 30.0, e_l: float = -70.6,
                 v_t: float = -50.4, delta_t: float = 2.0, tau_w: float = 144.0, a: float = 4.0,
                 b: float = 80.5, v_reset: float = -70.6, v_peak: float = 0.0,
                 max_substep: float = 0.1, **kw):
        super().__init__(n, **kw)
        for name, value in (("c_m", c_m), ("g_l", g_l), ("delta_t", delta_t), ("tau_w", tau_w),
                            ("max_substep", max_substep)):
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}", key=name)
        self.c_m, self.g_l, self.e_l, self.v_t = float(c_m), float(g_l), float(e_l), float(v_t)
        self.delta_t, self.tau_w, self.a, self.b = float(delta_t), float(tau_w), float(a), float(b)
        self.v_reset, self.v_peak = float(v_reset), float(v_peak)
        if self.v_peak <= self.v_t:
            raise ConfigError(f"v_peak ({v_peak}) must be above v_t ({v_t})", key="v_peak")
        self.substeps = max(1, math.ceil(self.dt / float(max_substep) - 1e-9))
        self.h_sub = self.dt / self.substeps

    def rheobase(self) -> float:
        """The smallest constant current (pA) that makes the neuron fire."""
        g = self.g_l + self.a
        return g * (self.v_t - self.e_l - self.delta_t + self.delta_t * math.log(g / self.g_l))

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.e_l)
        self.w = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        fired = torch.zeros_like(self.v, dtype=torch.bool)
        k = self.h_sub
        for _ in range(self.substeps):
            # the exponent is capped at v_peak: beyond it the neuron has spiked anyway
            spike_current = self.g_l * self.delta_t * torch.exp(
                (self.v.clamp(max=self.v_peak) - self.v_t) / self.delta_t)
            dv = (-self.g_l * (self.v - self.e_l) + spike_current - self.w + x) / self.c_m
            dw = (self.a * (self.v - self.e_l) - self.w) / self.tau_w
            self.v, self.w = self.v + k * dv, self.w + k * dw
            now = self.v >= self.v_peak
            self.v = self.v.masked_fill(now, self.v_reset)
            self.w = torch.where(now, self.w + self.b, self.w)
            fired |= now
        return fired.to(self.dtype)
