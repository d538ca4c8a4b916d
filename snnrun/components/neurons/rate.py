"""Rate (mean-field) populations of SPAIC: the output is a firing rate, not spikes."""

from __future__ import annotations

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel


class _RateNodes(NeuronModel):
    """Shared: a leaky state u' = (drive - u) / tau (forward Euler) and a rate output."""

    def __init__(self, n=1, *, tau: float = 1.0, rho: float = 0.1, i_ext: float = 0.0, **kw):
        super().__init__(n, **kw)
        if not tau > 0:
            raise ConfigError(f"tau must be > 0 ms, got {tau}", key="tau")
        self.tau, self.rho, self.i_ext = float(tau), float(rho), float(i_ext)
        self.k = self.dt / self.tau

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(0.0)  # u, called v so that monitors and decoders find it


@NeuronModel.register("meanfield", source="spaic")
class MeanFieldNodes(_RateNodes):
    """Mean-field LIF population (SPAIC's ``meanfield``): u' = (rho (i_ext + x) - u) / tau, r = relu(u).

    Under constant input u relaxes to rho (i_ext + x) as 1 - (1 - dt/tau)^k.
    """

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.v + self.k * (self.rho * (self.i_ext + x) - self.v)
        return torch.relu(self.v)


@NeuronModel.register("cann_field", source="spaic")
class CANNFieldNodes(_RateNodes):
    """Continuous attractor field (Fung, Wong & Wu 2010; SPAIC's ``cann_field``).

    u' = (i_ext + rho x - u) / tau,  r = relu(u)^2 / (1 + k rho sum_neurons relu(u)^2):
    divisive global inhibition normalises the bump. Recurrent Gaussian weights are a
    connection from the group to itself.
    """

    def __init__(self, n=1, *, tau: float = 1.0, rho: float = 0.02, k: float = 0.01, i_ext: float = 0.0, **kw):
        super().__init__(n, tau=tau, rho=rho, i_ext=i_ext, **kw)
        self.k_inh = float(k)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.v + self.k * (self.i_ext + self.rho * x - self.v)
        u2 = torch.relu(self.v) ** 2
        total = u2.reshape(u2.shape[0], -1).sum(1).view(-1, *([1] * len(self.shape)))
        return u2 / (1.0 + self.k_inh * self.rho * total)
