"""SPAIC's own LIF models (spaic/Neuron/Neuron.py, SPAIC 0.6.3): ``lif``, ``lifm`` (with a
synaptic current), ``plif`` (learned decay), ``qlif`` (the spiking part of Q-Backprop's LIF)
and ``lifint``; unitless."""

from __future__ import annotations

import math

import torch
from torch import nn

from snnrun.errors import ConfigError

from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.spaic_base import SpaicNode, decay_of


@NeuronModel.register("spaic.lif", source="spaic")
class SpaicLIFNode(SpaicNode):
    """SPAIC's LIF (spaic/Neuron/Neuron.py class LIFModel): exact leak, input added, back to 0.

    Each step, with beta = exp(-dt / tau_m)::

        v <- beta v + x
        s  = v > v_threshold                 (SPAIC: v_th, default 1)
        v <- 0 where s                       (SPAIC's reset op; v_reset here, default 0)

    Defaults (SPAIC 0.6.3): tau_m = 8 ms, v_threshold = 1. Unlike ``lif`` (BindsNET's, in mV
    with refractoriness) there is no rest potential and no refractory period.
    """

    def __init__(self, n=1, *, tau_m: float = 8.0, **kw):
        super().__init__(n, **kw)
        self.tau_m = float(tau_m)
        self.beta = decay_of(self.tau_m, self.dt, "tau_m")

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.beta * self.v + x


@NeuronModel.register("spaic.lifm", source="spaic")
class SpaicLIFMNode(SpaicNode):
    """SPAIC's LIF with a synaptic current (class LIFMModel).

    Each step, with beta_z = exp(-dt / tau_z)::

        i <- beta_p i + x                    synaptic current
        v <- beta_m v + i
        s  = v > v_threshold;   v <- 0 where s

    Defaults (SPAIC 0.6.3): tau_m = 10 ms, tau_p = 1 ms, v_threshold = 1.
    """

    def __init__(self, n=1, *, tau_m: float = 10.0, tau_p: float = 1.0, **kw):
        super().__init__(n, **kw)
        self.tau_m, self.tau_p = float(tau_m), float(tau_p)
        self.beta_m = decay_of(self.tau_m, self.dt, "tau_m")
        self.beta_p = decay_of(self.tau_p, self.dt, "tau_p")

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.i = self.state_tensor(0.0)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.i = self.beta_p * self.i + x
        self.v = self.beta_m * self.v + self.i


@NeuronModel.register("spaic.plif", source="spaic")
class SpaicParametricLIFNode(SpaicNode):
    """SPAIC's ``plif`` (spaic/Neuron/Neuron.py class PLIFModel): a LIF whose decay k = sigmoid(w)
    is learned, and whose reset lags a step.

    Each step (k per step, w = -ln(tau_m - 1) at the start, so k = 1 / tau_m)::

        v' = v + k (x - v)
        s  = v' > v_threshold
        v <- 0 where s[t-1], else v'       SPAIC's reset op reads O of the last step

    so a neuron above threshold spikes twice in a row before it goes back to 0. Defaults
    (SPAIC 0.6.3): tau_m = 2 (k = 0.5), v_threshold = 1. ``plif`` is SpikingJelly's
    ParametricLIFNode (reset in the same step).
    """

    def __init__(self, n=1, *, tau_m: float = 2.0, **kw):
        if not tau_m > 1:
            raise ConfigError(f"tau_m must be > 1 (k = 1 / tau_m per step), got {tau_m}", key="tau_m")
        super().__init__(n, **kw)
        self.w = nn.Parameter(torch.tensor(-math.log(float(tau_m) - 1.0)))

    def _device_dtype(self):
        return self.w.device, self.w.dtype

    @property
    def v_init(self) -> float:
        return 0.0

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.last_s = self.state_tensor(0.0)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + torch.sigmoid(self.w) * (x - self.v)

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        self.v = self.v * (1.0 - self.last_s)
        self.last_s = self.reset_spike(spike)


@NeuronModel.register("spaic.qlif", source="spaic")
class SpaicQLIFNode(SpaicNode):
    """The spiking part of SPAIC's Q-Backprop LIF (class QLIFModel): v = x - E, E a reset kernel.

    Each step, with beta_m = exp(-dt / tau_m)::

        E <- beta_m E + v_threshold s[t-1]    reset kernel of the last spike
        v  = x - E                            (x: the summed PSP, SPAIC's reduce_sum of PSP)
        s  = v > v_threshold

    Defaults (SPAIC 0.6.3): tau_m = 20 ms, v_threshold = 1. These are the equations of SPAIC's
    docstring: its operation list computes E and V but stops before the spike (no threshold
    op, so O stays 0 there) and before Q-Backprop's value traces (P, Q over two more inputs,
    R, F, BQ, TP, TQ; tau_s = 8 ms), which are not ported.
    """

    def __init__(self, n=1, *, tau_m: float = 20.0, **kw):
        super().__init__(n, **kw)
        self.tau_m = float(tau_m)
        self.beta_m = decay_of(self.tau_m, self.dt, "tau_m")

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.e = self.state_tensor(0.0)
        self.last_s = self.state_tensor(0.0)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.e = self.beta_m * self.e + self.v_threshold * self.last_s
        self.v = x - self.e

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        self.last_s = self.reset_spike(spike)  # the reset is the E kernel, next step


@NeuronModel.register("spaic.lifint", source="spaic")
class SpaicLIFIntNodes(NeuronModel):
    """SPAIC's LIF with a per-step decay factor and refractory steps (class LIFInt).

    Each step::

        v <- decay (v - v_rest) + v_rest
        v <- v + x            unless refractory (refrac_count > 0)
        refrac_count <- refrac_count - 1
        s  = v >= thresh                      (>=, as SPAIC's LIFInt)
        v <- v_reset, refrac_count <- reset_refrac where s

    ``decay`` is a factor per step (SPAIC's), not a time constant: it does not change with dt.
    Defaults (SPAIC 0.6.3): thresh = 1, decay = 1 (no leak), v_reset = v_rest = 0,
    reset_refrac = 0 steps. SPAIC names it for integer inputs; the arithmetic is the same in floats.
    """

    def __init__(self, n=1, *, thresh: float = 1.0, decay: float = 1.0, v_reset: float = 0.0,
                 v_rest: float = 0.0, reset_refrac: int = 0, **kw):
        super().__init__(n, **kw)
        self.thresh, self.decay = float(thresh), float(decay)
        self.v_reset, self.v_rest = float(v_reset), float(v_rest)
        self.reset_refrac = int(reset_refrac)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)
        self.refrac_count = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v = self.decay * (self.v - self.v_rest) + self.v_rest
        v = v + x.masked_fill(self.refrac_count > 0, 0.0)
        self.refrac_count = self.refrac_count - 1
        fired = v >= self.thresh
        self.refrac_count = self.refrac_count.masked_fill(fired, float(self.reset_refrac))
        self.v = v.masked_fill(fired, self.v_reset)
        return fired.to(self.dtype)
