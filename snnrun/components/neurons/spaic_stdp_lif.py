"""SPAIC's LIF models for its STDP examples (spaic/Neuron/Neuron.py, SPAIC 0.6.3):
``lifstdp_ex`` (excitatory, adaptive threshold), ``alifstdp_ex`` (unitless, subtractive reset,
threshold rising in proportion to itself) and ``lifstdp_ih`` (inhibitory)."""

from __future__ import annotations

import math

import torch

from snnrun.components.neurons.base import NeuronModel


class _SpaicSTDPLIF(NeuronModel):
    """Shared leak: v <- decay_v (v - v_rest) + v_rest + x, with decay_v a factor per step
    (SPAIC's; it does not change with dt)."""

    v_start = 0.0

    def __init__(self, n=1, *, v_th: float, v_reset: float, v_rest: float, decay_v: float, **kw):
        super().__init__(n, **kw)
        self.v_th, self.v_reset, self.v_rest, self.decay_v = float(v_th), float(v_reset), float(v_rest), float(decay_v)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.v_start)

    def charge(self, x: torch.Tensor) -> torch.Tensor:
        return self.decay_v * (self.v - self.v_rest) + self.v_rest + x


@NeuronModel.register("spaic.lifstdp_ih", source="spaic")
class SpaicLIFSTDPInhNodes(_SpaicSTDPLIF):
    """SPAIC's inhibitory LIF of its STDP example (class LIFSTDPIHModel).

    Each step: v <- decay_v (v - v_rest) + v_rest + x;  s = v > v_th;  v <- v_reset where s.
    Defaults (SPAIC 0.6.3): v_th = -40, v_reset = -45, v_rest = -60 mV, decay_v = exp(-1/10);
    v starts at -60 mV. No refractory period.
    """

    v_start = -60.0

    def __init__(self, n=1, *, v_th: float = -40.0, v_reset: float = -45.0, v_rest: float = -60.0,
                 decay_v: float = math.exp(-1 / 10), **kw):
        super().__init__(n, v_th=v_th, v_reset=v_reset, v_rest=v_rest, decay_v=decay_v, **kw)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v = self.charge(x)
        fired = v > self.v_th
        self.v = v.masked_fill(fired, self.v_reset)
        return fired.to(self.dtype)


@NeuronModel.register("spaic.lifstdp_ex", source="spaic")
class SpaicLIFSTDPExcNodes(_SpaicSTDPLIF):
    """SPAIC's excitatory LIF of its STDP example (class LIFSTDPEXModel): adaptive threshold.

    Each step::

        v     <- decay_v (v - v_rest) + v_rest + x
        theta <- decay_th theta                      (only while learning)
        s      = v > v_th + theta
        v     <- v_reset where s
        theta <- theta + th_inc sum_batch(s)         (only while learning)

    Defaults (SPAIC 0.6.3): v_th = -52, v_reset = -60, v_rest = -65 mV, th_inc = 0.05,
    decay_v = exp(-1/100), decay_th = exp(-1/1e7) (factors per step); v starts at -65 mV.
    theta survives samples (SPAIC's [stay] variable): a buffer with one value per neuron,
    saved in checkpoints. SPAIC keeps one theta per batch row and updates it in evaluation
    too; here it is shared by the batch (spikes summed, as ``adaptive_lif``) and frozen in
    ``eval()``, the same at batch size 1 while learning.
    """

    v_start = -65.0

    def __init__(self, n=1, *, v_th: float = -52.0, v_reset: float = -60.0, v_rest: float = -65.0,
                 th_inc: float = 0.05, decay_th: float = math.exp(-1 / 1e7), decay_v: float = math.exp(-1 / 100),
                 **kw):
        super().__init__(n, v_th=v_th, v_reset=v_reset, v_rest=v_rest, decay_v=decay_v, **kw)
        self.th_inc, self.decay_th = float(th_inc), float(decay_th)
        self.register_buffer("theta", torch.zeros(self.shape))

    def threshold_step(self, fired: torch.Tensor) -> None:
        self.theta.add_(self.th_inc * self.batch_sum(fired, dtype=self.theta.dtype))

    def reset_spiked(self, v: torch.Tensor, fired: torch.Tensor) -> torch.Tensor:
        return v.masked_fill(fired, self.v_reset)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v = self.charge(x)
        if self.training:
            self.theta.mul_(self.decay_th)
        fired = v > self.v_th + self.theta
        self.v = self.reset_spiked(v, fired)
        if self.training:
            self.threshold_step(fired)
        return fired.to(self.dtype)


@NeuronModel.register("spaic.alifstdp_ex", source="spaic")
class SpaicALIFSTDPExcNodes(SpaicLIFSTDPExcNodes):
    """SPAIC's unitless adaptive LIF of its STDP example (class ALIFSTDPEXModel).

    Each step::

        v     <- decay_v (v - v_rest) + v_rest + x
        theta <- decay_th theta                              (only while learning)
        s      = v > v_th + theta
        v     <- v - v_reset s                               (subtractive reset)
        theta <- theta + th_inc (v_th + theta) sum_batch(s)  (only while learning)

    Defaults (SPAIC 0.6.3): v_th = 2, v_reset = 2, v_rest = 0, th_inc = 0.001,
    decay_v = exp(-1/100), decay_th = exp(-1/1e5); v starts at 0. theta as ``spaic.lifstdp_ex``.
    """

    v_start = 0.0

    def __init__(self, n=1, *, v_th: float = 2.0, v_reset: float = 2.0, v_rest: float = 0.0,
                 th_inc: float = 0.001, decay_th: float = math.exp(-1 / 100000.0),
                 decay_v: float = math.exp(-1 / 100.0), **kw):
        super().__init__(n, v_th=v_th, v_reset=v_reset, v_rest=v_rest, th_inc=th_inc, decay_th=decay_th,
                         decay_v=decay_v, **kw)

    def reset_spiked(self, v: torch.Tensor, fired: torch.Tensor) -> torch.Tensor:
        return v - self.v_reset * fired.to(v.dtype)

    def threshold_step(self, fired: torch.Tensor) -> None:
        self.theta.add_(self.th_inc * (self.v_th + self.theta) * self.batch_sum(fired, dtype=self.theta.dtype))
