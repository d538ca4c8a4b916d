"""SPAIC's integrate-and-fire models (spaic/Neuron/Neuron.py, SPAIC 0.6.3): ``if``,
``ifsoftreset``, ``ifb`` and ``nonspikingifb``, unitless (threshold 1) as there."""

from __future__ import annotations

import torch

from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.spaic_base import SpaicNode


@NeuronModel.register("spaic.if", source="spaic")
class SpaicIFNode(SpaicNode):
    """SPAIC's IF (spaic/Neuron/Neuron.py class IFModel): a perfect integrator with a constant
    leak, back to 0 after a spike.

    Each step::

        v <- v + x - constant_decay          (SPAIC's ConstantDecay, default 0)
        s  = v > v_threshold                 (SPAIC: v_th, default 1)
        v <- 0 where s                       (SPAIC's reset op: v (1 - s))

    Trainable with the ``surrogate`` option (SPAIC trains it through its learner). ``v_reset``
    (default 0) is where a spike sends v; SPAIC always resets to 0.
    """

    def __init__(self, n=1, *, constant_decay: float = 0.0, **kw):
        super().__init__(n, **kw)
        self.constant_decay = float(constant_decay)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + x - self.constant_decay


@NeuronModel.register("spaic.ifsoftreset", source="spaic")
class SpaicIFSoftResetNode(SpaicIFNode):
    """SPAIC's ``ifsoftreset`` (class IFSoftModel): in SPAIC 0.6.3 the same equations as its
    ``if``, V(t) = V(t-1) (1 - O(t-1)) + I - ConstantDecay, i.e. back to 0 after a spike.

    SPAIC's name says soft reset, its code resets to 0; snnrun's subtract-the-threshold model is
    ``if_soft_reset``. Each step: v <- v + x - constant_decay; s = v > v_threshold; v <- 0 where s.
    """


@NeuronModel.register("spaic.ifb", source="spaic")
class SpaicIFBNode(SpaicNode):
    """SPAIC's IF with a bias current (class IFBModel).

    Each step::

        v <- v + x + bias                    (bias default 0)
        s  = v > v_threshold;   v <- 0 where s
    """

    def __init__(self, n=1, *, bias: float = 0.0, **kw):
        super().__init__(n, **kw)
        self.bias = float(bias)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + x + self.bias


@NeuronModel.register("spaic.nonspikingifb", source="spaic")
class SpaicNonSpikingIFBNodes(NeuronModel):
    """SPAIC's non-spiking integrator with bias (class NonSpikingIFBModel): v <- v + x + bias, no spikes.

    A readout: decode its v with final_voltage / voltage_sum / v_trajectory. The output is 0.
    """

    def __init__(self, n=1, *, bias: float = 0.0, **kw):
        super().__init__(n, **kw)
        self.bias = float(bias)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.v + x + self.bias
        return torch.zeros_like(self.v)
