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
    I in pA (held over the step). Defaults are Brette & Gerstner's (2005) tonic cell, spikes
    detected at v_peak = 20 mV (SPAIC's aeif, Vspk; ``spaic.aeif`` is SPAIC's scheme). Each dt
    is split into Euler sub-steps of at most ``max_substep`` ms (the exponential term is
    stiff). Under constant I (no spikes yet) the neuron fires iff I exceeds the rheobase
    (g_l + a) (v_t - e_l - delta_t + delta_t ln(1 + a / g_l)).
    """

    def __init__(self, n=1, *, c_m: float = 281.0, g_l: float = 30.0, e_l: float = -70.6,
                 v_t: float = -50.4, delta_t: float = 2.0, tau_w: float = 144.0, a: float = 4.0,
                 b: float = 80.5, v_reset: float = -70.6, v_peak: float = 20.0,
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


@NeuronModel.register("spaic.aeif", "spaic.adex", source="spaic")
class SpaicAdExNodes(NeuronModel):
    """SPAIC's adaptive exponential IF (spaic/Neuron/Neuron.py class aEIFModel, also its
    ``adex``): one forward-Euler step per dt, spike when v passes v_spk.

    Each step, from (v, u) of the last step::

        v' = v + dt / c (g_l (delta_t exp((v - v_th) / delta_t) - (v - e_l)) - u + x)
        u' = u + dt / tau_w (a (v - e_l) - u)
        s  = v' > v_spk
        v <- e_l where s, else v';   u <- u' + b s

    Defaults (SPAIC 0.6.3, its names in brackets): c = 281 [C], g_l = 30 [gL], e_l = -70.6 [EL],
    v_th = -50.4, delta_t = 2, tau_w = 144, a = 4, b = 0.0805, v_spk = 20 [Vspk]; v starts at
    e_l's default -70.6 and u at 0. b = 0.0805 is SPAIC's (Brette & Gerstner's 80.5 pA in nA,
    while the other defaults are in pA/nS: a much weaker adaptation than ``adex``). ``adex``
    (alias ``aeif``) is snnrun's: sub-stepped, exponent capped, the paper's units.
    """

    def __init__(self, n=1, *, c: float = 281.0, g_l: float = 30.0, e_l: float = -70.6, v_th: float = -50.4,
                 delta_t: float = 2.0, tau_w: float = 144.0, a: float = 4.0, b: float = 0.0805,
                 v_spk: float = 20.0, **kw):
        super().__init__(n, **kw)
        for name, value in (("c", c), ("delta_t", delta_t), ("tau_w", tau_w)):
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}", key=name)
        self.c, self.g_l, self.e_l, self.v_th = float(c), float(g_l), float(e_l), float(v_th)
        self.delta_t, self.tau_w, self.a, self.b, self.v_spk = float(delta_t), float(tau_w), float(a), float(b), float(v_spk)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(-70.6)
        self.u = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        dv = self.v - self.e_l
        spike_current = self.delta_t * torch.exp((self.v - self.v_th) / self.delta_t)
        v = self.v + self.dt / self.c * (self.g_l * (spike_current - dv) - self.u + x)
        u = self.u + self.dt / self.tau_w * (self.a * dv - self.u)
        fired = v > self.v_spk
        s = fired.to(self.dtype)
        self.v = torch.where(fired, torch.full_like(v, self.e_l), v)
        self.u = u + self.b * s
        return s
