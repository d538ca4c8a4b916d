"""Generalized LIF, level 5 (Teeter et al. 2018; SPAIC's ``glif``): after-spike currents,
a spike-induced and a voltage-dependent threshold component."""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel


@NeuronModel.register("glif", source="spaic")
class GLIFNodes(NeuronModel):
    """GLIF5: v' = (R (I + I1 + I2) - (v - e_l)) / (R C), threshold theta_inf + theta_s + theta_v.

    Between spikes (rates in 1/ms)::

        I_j'     = -k_j I_j                         after-spike currents, j = 1, 2
        theta_s' = -b_s theta_s                     spike-induced threshold
        theta_v' = a_v (v - e_l) - b_v theta_v      voltage-dependent threshold

    s = v >= theta_inf + theta_s + theta_v, then
    v <- e_l + f_v (v - e_l) - delta_v,  theta_s <- theta_s + delta_theta_s,
    I_j <- I_j + delta_i_j,  theta_v unchanged. Unitless defaults (threshold 1) as SPAIC; the
    decays of I_j and theta_s are exact (exp(-k dt)), v and theta_v forward Euler; ``x`` is I.
    """

    def __init__(self, n=1, *, r: float = 0.2, c: float = 1.0, e_l: float = 0.0, theta_inf: float = 1.0,
                 f_v: float = 0.1, delta_v: float = 0.05, b_s: float = 0.02, delta_theta_s: float = 0.02,
                 k_1: float = 0.1, k_2: float = 0.1, delta_i_1: float = 1.0, delta_i_2: float = 1.0,
                 a_v: float = 0.05, b_v: float = 0.1, **kw):
        super().__init__(n, **kw)
        if not (r > 0 and c > 0):
            raise ConfigError(f"r and c must be > 0, got r={r}, c={c}", key="r")
        self.r, self.c, self.e_l, self.theta_inf = float(r), float(c), float(e_l), float(theta_inf)
        self.f_v, self.delta_v = float(f_v), float(delta_v)
        self.b_s, self.delta_theta_s = float(b_s), float(delta_theta_s)
        self.k_1, self.k_2, self.delta_i_1, self.delta_i_2 = float(k_1), float(k_2), float(delta_i_1), float(delta_i_2)
        self.a_v, self.b_v = float(a_v), float(b_v)
        self.tau_m = self.r * self.c
        self.decay_m = math.exp(-self.dt / self.tau_m)
        self.decay_s, self.decay_1, self.decay_2 = (math.exp(-k * self.dt) for k in (self.b_s, self.k_1, self.k_2))

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.e_l)
        self.i1, self.i2 = self.state_tensor(0.0), self.state_tensor(0.0)
        self.theta_s, self.theta_v = self.state_tensor(0.0), self.state_tensor(0.0)

    def threshold(self) -> torch.Tensor:
        return self.theta_inf + self.theta_s + self.theta_v

    def step(self, x: torch.Tensor) -> torch.Tensor:
        dv = self.v - self.e_l
        # exact for input held over the step: stable even when dt > tau_m (SPAIC's R C = 0.2 ms)
        target = self.e_l + self.r * (x + self.i1 + self.i2)
        self.v = target + (self.v - target) * self.decay_m
        self.theta_v = self.theta_v + self.dt * (self.a_v * dv - self.b_v * self.theta_v)
        self.theta_s = self.theta_s * self.decay_s
        self.i1, self.i2 = self.i1 * self.decay_1, self.i2 * self.decay_2
        fired = self.v >= self.threshold()
        s = fired.to(self.dtype)
        reset_v = self.e_l + self.f_v * (self.v - self.e_l) - self.delta_v
        self.v = torch.where(fired, reset_v, self.v)
        self.theta_s = self.theta_s + self.delta_theta_s * s
        self.i1, self.i2 = self.i1 + self.delta_i_1 * s, self.i2 + self.delta_i_2 * s
        return s
