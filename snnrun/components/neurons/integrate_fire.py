"""Simple integrate-and-fire family: McCulloch-Pitts, IF, boosted/current LIF (BindsNET), snnrun's
subtract-reset IF, and SPAIC's constant-current LIF, non-spiking LIF and null (pass-through) model.

BindsNET models use mV and ms with the input ``x`` in mV per step; SPAIC models are unitless
(threshold 1.0) as there.
"""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.lif import refractory_reset


def decay_factor(tc: float, dt: float, key: str) -> float:
    """exp(-dt / tc), the exact per-step decay of a linear leak; tc must be > 0."""
    if not tc > 0:
        raise ConfigError(f"time constant must be > 0 ms, got {tc}", key=key)
    return math.exp(-dt / tc)


def psp_norm(tau_p: float, tau_q: float) -> float:
    """V0 of SPAIC's two-exponential PSP: the peak of V0 (exp(-t/tau_p) - exp(-t/tau_q)) is 1."""
    if tau_p == tau_q:
        raise ConfigError("tau_p and tau_q must differ (the PSP is their difference)", key="tau_q")
    beta = tau_p / tau_q
    return (1.0 / (beta - 1.0)) * beta ** (beta / (beta - 1.0))


@NeuronModel.register("mcculloch_pitts", source="bindsnet")
class McCullochPittsNodes(NeuronModel):
    """McCulloch-Pitts threshold units: v = x, s = v >= thresh (no memory).

    BindsNET's ``McCullochPitts``: the voltage is this step's input, nothing integrates.
    """

    def __init__(self, n=1, *, thresh: float = 1.0, **kw):
        super().__init__(n, **kw)
        self.thresh = float(thresh)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = x.to(self.dtype)
        return (self.v >= self.thresh).to(self.dtype)


@NeuronModel.register("if", source="bindsnet")
class IFNodes(NeuronModel):
    """Integrate-and-fire without leak, hard reset and refractory period (BindsNET's ``IFNodes``).

    Each step::

        v <- v + x            unless refractory (perfect integrator, no leak)
        s  = v >= thresh
        v <- reset, refractory for ``refrac`` ms where s;   v <- max(v, lbound) if set

    From v = reset, constant input I fires first after ceil((thresh - reset) / I) steps.
    """

    def __init__(self, n=1, *, thresh: float = -52.0, reset: float = -65.0, refrac: float = 5.0,
                 lbound: float | None = None, **kw):
        super().__init__(n, **kw)
        self.thresh, self.reset, self.refrac = float(thresh), float(reset), float(refrac)
        self.lbound = None if lbound is None else float(lbound)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.reset)
        self.refrac_count = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.v + x.masked_fill(self.refrac_count > 0, 0.0)
        self.refrac_count = self.refrac_count - self.dt
        fired = self.v >= self.thresh
        self.v, self.refrac_count = refractory_reset(self.v, self.refrac_count, fired, refrac=self.refrac,
                                                     reset=self.reset, lbound=self.lbound)
        return fired.to(self.dtype)


@NeuronModel.register("boosted_lif", source="bindsnet")
class BoostedLIFNodes(NeuronModel):
    """LIF with rest = reset = 0 (BindsNET's ``BoostedLIFNodes``, a faster LIF).

    Each step: v <- v exp(-dt/tc_decay); v <- v + x unless refractory; s = v >= thresh;
    v <- 0 and refractory for ``refrac`` ms where s. ``thresh`` 13 mV is LIF's thresh - rest.
    """

    def __init__(self, n=1, *, thresh: float = 13.0, refrac: float = 5.0, tc_decay: float = 100.0, **kw):
        super().__init__(n, **kw)
        self.thresh, self.refrac, self.tc_decay = float(thresh), float(refrac), float(tc_decay)
        self.decay = decay_factor(self.tc_decay, self.dt, "tc_decay")

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)
        self.refrac_count = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        x = x.masked_fill(self.refrac_count > 0, 0.0)
        self.refrac_count = self.refrac_count - self.dt
        self.v = self.v * self.decay + x
        fired = self.v >= self.thresh
        self.refrac_count = self.refrac_count.masked_fill(fired, self.refrac)
        self.v = self.v.masked_fill(fired, 0.0)
        return fired.to(self.dtype)


@NeuronModel.register("current_lif", source="bindsnet")
class CurrentLIFNodes(NeuronModel):
    """Current-based LIF: input charges a synaptic current that decays (BindsNET's ``CurrentLIFNodes``).

    Each step::

        v <- rest + (v - rest) exp(-dt/tc_decay);   i <- i exp(-dt/tc_i_decay) + x
        v <- v + i            unless refractory
        s  = v >= thresh;  v <- reset, refractory for ``refrac`` ms where s

    A single input pulse q at step 0 adds q d_i^k to v at step k (d_i = exp(-dt/tc_i_decay)).
    """

    def __init__(self, n=1, *, thresh: float = -52.0, rest: float = -65.0, reset: float = -65.0,
                 refrac: float = 5.0, tc_decay: float = 100.0, tc_i_decay: float = 2.0,
                 lbound: float | None = None, **kw):
        super().__init__(n, **kw)
        self.thresh, self.rest, self.reset = float(thresh), float(rest), float(reset)
        self.refrac, self.tc_decay, self.tc_i_decay = float(refrac), float(tc_decay), float(tc_i_decay)
        self.lbound = None if lbound is None else float(lbound)
        self.decay = decay_factor(self.tc_decay, self.dt, "tc_decay")
        self.i_decay = decay_factor(self.tc_i_decay, self.dt, "tc_i_decay")

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.rest)
        self.i = self.state_tensor(0.0)
        self.refrac_count = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.rest + (self.v - self.rest) * self.decay
        self.i = self.i * self.i_decay + x
        self.refrac_count = self.refrac_count - self.dt
        self.v = self.v + self.i.masked_fill(self.refrac_count > 0, 0.0)
        fired = self.v >= self.thresh
        self.v, self.refrac_count = refractory_reset(self.v, self.refrac_count, fired, refrac=self.refrac,
                                                     reset=self.reset, lbound=self.lbound)
        return fired.to(self.dtype)


@NeuronModel.register("if_soft_reset", "if_subtract_reset")
class SoftResetIFNodes(NeuronModel):
    """IF with subtractive (soft) reset, unitless (snnrun's; ANN-to-SNN conversion style).

    Each step::

        v <- v + x - constant_decay
        s  = v >= v_th
        v <- v - v_th * s          (charge above threshold is kept)

    Charge is conserved: after T steps of constant input I (0 <= I <= v_th), the spike count
    is exactly floor(T I / v_th) and v = T I - v_th * count. Not SPAIC's ``ifsoftreset``, which
    despite its name goes back to 0 after a spike (``spaic.ifsoftreset``).
    """

    def __init__(self, n=1, *, v_th: float = 1.0, constant_decay: float = 0.0, **kw):
        super().__init__(n, **kw)
        self.v_th, self.constant_decay = float(v_th), float(constant_decay)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.v + x - self.constant_decay
        s = (self.v >= self.v_th).to(self.dtype)
        self.v = self.v - self.v_th * s
        return s


@NeuronModel.register("constant_current_lif", "constantcurrentlif", "spaic.constantcurrentlif", source="spaic")
class ConstantCurrentLIFNodes(NeuronModel):
    """LIF driven by a (held) input current, forward Euler, unitless (SPAIC's ``constantcurrentlif``,
    spaic/Neuron/Neuron.py class ConstantCurrentLIFModel).

    Each step (SPAIC's equation, Ureset = v_reset)::

        v <- v + dt/tau_m (v_reset - v + x)      leak towards v_reset + x
        s  = v > v_th;   v <- v_reset where s

    v starts at 0 (SPAIC's). Under constant I from v = v_reset = 0: v_k = I (1 - (1 - dt/tau_m)^k),
    so the first spike comes at the smallest k with v_k > v_th (never if I <= v_th). SPAIC's
    operations leave Ureset out (leak towards x, back to 0): the same at its default v_reset = 0.
    Defaults (SPAIC): tau_m = 20 ms, v_th = 1, v_reset = 0.
    """

    def __init__(self, n=1, *, tau_m: float = 20.0, v_th: float = 1.0, v_reset: float = 0.0, **kw):
        super().__init__(n, **kw)
        if not tau_m > 0:
            raise ConfigError(f"tau_m must be > 0 ms, got {tau_m}", key="tau_m")
        self.tau_m, self.v_th, self.v_reset = float(tau_m), float(v_th), float(v_reset)
        self.k = self.dt / self.tau_m

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.v + self.k * (self.v_reset - self.v + x)
        fired = self.v > self.v_th
        self.v = self.v.masked_fill(fired, self.v_reset)
        return fired.to(self.dtype)


@NeuronModel.register("nonspiking_lif", "nonspikinglif", "spaic.nonspikinglif", source="spaic")
class NonSpikingLIFNodes(NeuronModel):
    """Leaky integrator of a two-exponential PSP that never spikes (SPAIC's ``NonSpikingLIF``).

    Each step (a readout: decode it with final_voltage / voltage_sum / v_trajectory)::

        I = V0 x;   M <- exp(-dt/tau_p) M + I;   S <- exp(-dt/tau_q) S + I
        v <- v + dt/tau_m (M - S - v)
        s = 0

    V0 scales the PSP kernel exp(-t/tau_p) - exp(-t/tau_q) to a peak of 1. SPAIC's operations
    read I, M and S of the previous step (a chain of one-step delays between input and v);
    here each line uses the value just computed, so v follows x three steps sooner.
    """

    def __init__(self, n=1, *, tau_p: float = 4.0, tau_q: float = 1.0, tau_m: float = 1.0, **kw):
        super().__init__(n, **kw)
        self.tau_p, self.tau_q, self.tau_m = float(tau_p), float(tau_q), float(tau_m)
        self.beta_p = decay_factor(self.tau_p, self.dt, "tau_p")
        self.beta_q = decay_factor(self.tau_q, self.dt, "tau_q")
        if not self.tau_m > 0:
            raise ConfigError(f"tau_m must be > 0 ms, got {tau_m}", key="tau_m")
        self.v0 = psp_norm(self.tau_p, self.tau_q)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)
        self.m = self.state_tensor(0.0)
        self.q = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        i = self.v0 * x
        self.m = self.beta_p * self.m + i
        self.q = self.beta_q * self.q + i
        self.v = self.v + (self.dt / self.tau_m) * (self.m - self.q - self.v)
        return torch.zeros_like(self.v)


@NeuronModel.register("null", source="spaic")
class NullNodes(NeuronModel):
    """Pass-through (SPAIC's ``null`` model): the output is the input, s = x, real-valued.

    Unlike ``input`` it is not fed by the encoder; use it to relay or sum currents.
    """

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = x.to(self.dtype)
        return self.v
