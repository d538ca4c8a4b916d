"""Generalized LIF, level 5 (Teeter et al. 2018) as SPAIC writes it (spaic/Neuron/Neuron.py
class GLIFModel, SPAIC 0.6.3): after-spike currents, a spike-induced and a voltage-dependent
threshold component, forward Euler."""

from __future__ import annotations

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel


@NeuronModel.register("glif", source="spaic")
class GLIFNodes(NeuronModel):
    """GLIF5: c v' = x + I1 + I2 - (v - e_l) / r, threshold theta_inf + theta_s + theta_v.

    Each step, forward Euler from the last step's values (rates in 1/ms)::

        I_j'     = I_j (1 - dt k_j)                              after-spike currents, j = 1, 2
        v'       = v + dt / c (x + I_1' + I_2' - (v - e_l) / r)
        theta_s' = theta_s (1 - dt b_s)                          spike-induced threshold
        theta_v' = theta_v + dt (a_v (v - e_l) - b_v theta_v)    voltage-dependent threshold
        s        = v' > theta_inf + theta_s' + theta_v'
        where s: v <- e_l + f_v (v' - e_l) - delta_v,  theta_s <- theta_s' + delta_theta_s,
                 I_j <- f_j I_j' + delta_i_j                     (theta_v unchanged)

    Defaults and initial state are SPAIC 0.6.3's (its names: C, R, E_L, Theta_inf, delta_Theta_s,
    delta_I1/2, f1/2): c = 60, r = 2, e_l = 0, theta_inf = 1, f_v = 0.1, delta_v = 0.05,
    b_s = 0.02, delta_theta_s = 0.2, k_1 = 0.8, k_2 = 0.6, f_1 = f_2 = 1, delta_i_1 =
    delta_i_2 = 0.1, a_v = 0.12, b_v = 0.3; every sample starts at v = ``v_init`` (0),
    theta_s = 0.1, theta_v = 0.2, I_1 = 0.08, I_2 = 0.06. ``x`` is the input current.
    """

    def __init__(self, n=1, *, c: float = 60.0, r: float = 2.0, e_l: float = 0.0, theta_inf: float = 1.0,
                 f_v: float = 0.1, delta_v: float = 0.05, b_s: float = 0.02, delta_theta_s: float = 0.2,
                 k_1: float = 0.8, k_2: float = 0.6, f_1: float = 1.0, f_2: float = 1.0,
                 delta_i_1: float = 0.1, delta_i_2: float = 0.1, a_v: float = 0.12, b_v: float = 0.3,
                 v_init: float = 0.0, **kw):
        super().__init__(n, **kw)
        if not (r > 0 and c > 0):
            raise ConfigError(f"r and c must be > 0, got r={r}, c={c}", key="r" if not r > 0 else "c")
        self.r, self.c, self.e_l, self.theta_inf = float(r), float(c), float(e_l), float(theta_inf)
        self.f_v, self.delta_v = float(f_v), float(delta_v)
        self.b_s, self.delta_theta_s = float(b_s), float(delta_theta_s)
        self.k_1, self.k_2, self.f_1, self.f_2 = float(k_1), float(k_2), float(f_1), float(f_2)
        self.delta_i_1, self.delta_i_2 = float(delta_i_1), float(delta_i_2)
        self.a_v, self.b_v, self.v_init = float(a_v), float(b_v), float(v_init)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.v_init)
        self.i1, self.i2 = self.state_tensor(0.08), self.state_tensor(0.06)
        self.theta_s, self.theta_v = self.state_tensor(0.1), self.state_tensor(0.2)

    def threshold(self) -> torch.Tensor:
        return self.theta_inf + self.theta_s + self.theta_v

    def step(self, x: torch.Tensor) -> torch.Tensor:
        dt, dv = self.dt, self.v - self.e_l
        i1, i2 = self.i1 * (1.0 - dt * self.k_1), self.i2 * (1.0 - dt * self.k_2)
        v = self.v + dt / self.c * (x + i1 + i2 - dv / self.r)
        theta_s = self.theta_s * (1.0 - dt * self.b_s)
        self.theta_v = self.theta_v + dt * (self.a_v * dv - self.b_v * self.theta_v)
        fired = v > self.theta_inf + theta_s + self.theta_v
        s = fired.to(self.dtype)
        self.v = torch.where(fired, self.e_l + self.f_v * (v - self.e_l) - self.delta_v, v)
        self.theta_s = theta_s + self.delta_theta_s * s
        self.i1 = torch.where(fired, self.f_1 * i1 + self.delta_i_1, i1)
        self.i2 = torch.where(fired, self.f_2 * i2 + self.delta_i_2, i2)
        return s
