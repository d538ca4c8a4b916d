"""What SPAIC's models share here: the strict spike (SPAIC's ``threshold`` op fires where
v > v_th, not at equality) and SPAIC's PSP normalisation V0."""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.trainable import TrainableNode


def fire_above(surrogate, x: torch.Tensor) -> torch.Tensor:
    """s = [x > 0] forward with the surrogate's gradient: the surrogate's forward is [x >= 0],
    so the value at x == 0 is taken back out of the graph (the gradient there is kept)."""
    s = surrogate(x)
    return s - (s * (x == 0)).detach()


def decay_of(tau: float, dt: float, key: str) -> float:
    """exp(-dt / tau): SPAIC's ``_tau_variables`` (tau must be > 0)."""
    if not tau > 0:
        raise ConfigError(f"{key} must be > 0 ms, got {tau}", key=key)
    return math.exp(-dt / tau)


class SpaicNode(TrainableNode):
    """Base of SPAIC's surrogate-trainable models: charge, fire where v > threshold (SPAIC's
    ``torch.gt``), reset. SPAIC takes gradients from its learner (STCA, STBP ...); here the
    ``surrogate`` option plays that part."""

    def neuronal_fire(self) -> torch.Tensor:
        return fire_above(self.surrogate, self.v - self.threshold())
