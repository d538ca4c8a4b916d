"""SPAIC's SpikeProp-style LIF models (spaic/Neuron/Neuron.py, SPAIC 0.6.3): ``slif`` (a
kernel LIF whose reset is a kernel jump) and ``selif`` (an exponential-like membrane with a
recovery variable).

In SPAIC both hand their voltage to the TRUE_SpikeProp learner's ``threshold(V, dV, v_th)``,
which returns two channels: the spike and a sub-step spike-time correction. SPAIC 0.6.3 does
not ship that learner, so here the spike is v > v_threshold (trained through the ``surrogate``
option) and the time-correction channel is 0: the equations below are SPAIC's with that channel 0.
"""

from __future__ import annotations

import torch

from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.integrate_fire import psp_norm
from snnrun.components.neurons.spaic_base import SpaicNode, decay_of


class _SpikePropNode(SpaicNode):
    """Shared: state M, S, the last spike, and v starting at 0."""

    @property
    def v_init(self) -> float:
        return 0.0

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.m, self.q = self.state_tensor(0.0), self.state_tensor(0.0)
        self.last_s = self.state_tensor(0.0)

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        self.last_s = self.reset_spike(spike)  # SPAIC applies the reset in the next step


@NeuronModel.register("spaic.slif", source="spaic")
class SpaicSLIFNode(_SpikePropNode):
    """SPAIC's ``slif`` (class SLIFModel): v = M - S, a spike pulls M down by 5 v_threshold.

    Each step, with beta_m = exp(-dt / tau_m), beta_q = exp(-dt / tau_q)::

        I = V0 x
        M <- beta_m M + I - 5 v_threshold s[t-1]
        S <- beta_q S + I
        v  = M - S;   s = v > v_threshold

    V0 = (1 / (b - 1)) b^(b / (b - 1)), b = tau_m / tau_q. Defaults (SPAIC 0.6.3): tau_m = 20,
    tau_q = 8 ms, v_threshold = 1; SPAIC's reset amplitude is fixed at 5 v_th (its v_reset
    and tau_p arguments are not used by the dynamics).
    """

    def __init__(self, n=1, *, tau_m: float = 20.0, tau_q: float = 8.0, **kw):
        super().__init__(n, **kw)
        self.tau_m, self.tau_q = float(tau_m), float(tau_q)
        self.beta_m = decay_of(self.tau_m, self.dt, "tau_m")
        self.beta_q = decay_of(self.tau_q, self.dt, "tau_q")
        self.v0 = psp_norm(self.tau_m, self.tau_q)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        i = self.v0 * x
        self.m = self.beta_m * self.m + i - 5.0 * self.v_threshold * self.last_s
        self.q = self.beta_q * self.q + i
        self.v = self.m - self.q


@NeuronModel.register("spaic.selif", source="spaic")
class SpaicSELIFNode(_SpikePropNode):
    """SPAIC's ``selif`` (class SELIFModel): a quadratic (exponential-like) membrane driven by a
    two-kernel PSP, with a recovery variable R.

    Each step, with beta_z = exp(-dt / tau_z)::

        I = V0 x;   M <- beta_p M + I;   S <- beta_q S + I
        R <- beta_r R + (1 - beta_r) v + 10 s[t-1]
        dv = (2 clamp(v, -10, v_threshold)^2 - v + (M - S) + 0.5 - 0.5 R) / tau_m
        v  <- v + dt dv - v_threshold s[t-1]
        s  = v > v_threshold

    V0 = (1 / (b - 1)) b^(b / (b - 1)), b = tau_p / tau_q. Defaults (SPAIC 0.6.3): tau_m = 12,
    tau_p = 6, tau_q = 2, tau_r = 16 ms, v_threshold = 1. The constant 0.5 drive makes a silent
    neuron creep up and fire on its own, as in SPAIC.
    """

    def __init__(self, n=1, *, tau_m: float = 12.0, tau_p: float = 6.0, tau_q: float = 2.0,
                 tau_r: float = 16.0, **kw):
        super().__init__(n, **kw)
        self.tau_m, self.tau_p, self.tau_q, self.tau_r = float(tau_m), float(tau_p), float(tau_q), float(tau_r)
        decay_of(self.tau_m, self.dt, "tau_m")
        self.beta_p = decay_of(self.tau_p, self.dt, "tau_p")
        self.beta_q = decay_of(self.tau_q, self.dt, "tau_q")
        self.beta_r = decay_of(self.tau_r, self.dt, "tau_r")
        self.v0 = psp_norm(self.tau_p, self.tau_q)

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.r = self.state_tensor(0.0)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        i = self.v0 * x
        self.m = self.beta_p * self.m + i
        self.q = self.beta_q * self.q + i
        self.r = self.beta_r * self.r + (1.0 - self.beta_r) * self.v + 10.0 * self.last_s
        quad = 2.0 * self.v.clamp(-10.0, self.v_threshold) ** 2
        dv = (quad - self.v + (self.m - self.q) + 0.5 - 0.5 * self.r) / self.tau_m
        self.v = self.v + self.dt * dv - self.v_threshold * self.last_s
