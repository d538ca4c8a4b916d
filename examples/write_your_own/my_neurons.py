"""A neuron model of your own, used from a config by ``_target_: my_neurons.ThresholdAdaptingLIF``.

The interface (snnrun/components/neurons/base.py, ``NeuronModel``):

- ``__init__(self, n=1, *, <your parameters>, **kw)``: pass ``n`` and ``**kw`` (``dt``, ``traces``,
  ``tc_trace`` ...) on to ``super().__init__``; the config's keys become the keyword arguments
  (unknown keys are errors naming the key). ``self.dt`` is the step in the encoder's units.
- ``reset_dynamics(self)``: create the per-sample state at the start of every presentation
  with ``self.state_tensor(value)`` (a ``(batch, *shape)`` tensor); ``v`` is the membrane
  potential that decoders and losses reading ``v`` use, and ``snnrun report`` plots.
- ``step(self, x) -> spikes``: one time step; ``x`` is the summed input current ``(batch, *shape)``;
  return the spikes (0/1, the group's dtype). The base class stores them in ``self.s`` and updates
  the spike traces ``self.x`` (``traces: true``) that STDP rules read.
- learned state that must survive samples and be checkpointed: ``self.register_buffer(...)``,
  updated only while ``self.training`` (``network.eval()`` freezes it for the label pass and test).
- for surrogate-gradient training subclass ``snnrun.components.neurons.trainable.TrainableNode``
  instead (charge / fire with a surrogate / reset; see its module docstring).
"""

from __future__ import annotations

import math

import torch

from snnrun.components.neurons.base import NeuronModel


class ThresholdAdaptingLIF(NeuronModel):
    """Dimensionless LIF with a homeostatic threshold: v <- v d + x; spike when v >= 1 + theta;
    then v <- 0 and, while learning, theta <- theta + theta_plus per spike (summed over the batch)."""

    def __init__(self, n=1, *, tau: float = 10.0, theta_plus: float = 0.02, **kw):
        super().__init__(n, **kw)
        self.decay = math.exp(-self.dt / float(tau))
        self.theta_plus = float(theta_plus)
        self.register_buffer("theta", torch.zeros(self.shape))  # learned: saved in checkpoints

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v = self.v * self.decay + x
        fired = v >= 1.0 + self.theta
        self.v = v.masked_fill(fired, 0.0)
        if self.training:
            self.theta.add_(self.theta_plus * fired.sum(0, dtype=self.theta.dtype))
        return fired.to(self.dtype)
