"""LIF neurons with an adaptive threshold (homeostasis), as in Diehl & Cook (2015)."""

from __future__ import annotations

import math

import torch

from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.lif import LIFNodes


@NeuronModel.register("adaptive_lif", source="bindsnet")
class AdaptiveLIFNodes(LIFNodes):
    """LIF whose threshold rises by ``theta_plus`` at each spike and decays slowly.

    Per step (BindsNET's ``AdaptiveLIFNodes``), on top of :class:`LIFNodes`::

        theta <- theta * exp(-dt / tc_theta_decay)            (only while learning)
        s      = v >= thresh + theta
        theta <- theta + theta_plus * sum_batch(s)            (only while learning)

    ``theta`` has one value per neuron shared by the batch (BindsNET's choice, summed over
    the batch), is a buffer (saved in checkpoints) and is frozen in ``eval()`` mode. Defaults
    are BindsNET's: rest = reset = -65, thresh = -52 mV, refrac = 5 ms, tc_decay = 100 ms,
    theta_plus = 0.05 mV, tc_theta_decay = 1e7 ms.
    """

    def __init__(self, n=1, *, rest: float = -65.0, reset: float = -65.0, thresh: float = -52.0,
                 refrac: float = 5.0, tc_decay: float = 100.0, theta_plus: float = 0.05,
                 tc_theta_decay: float = 1e7, lbound: float | None = None, **kw):
        super().__init__(n, rest=rest, reset=reset, thresh=thresh, refrac=refrac,
                         tc_decay=tc_decay, lbound=lbound, **kw)
        self.theta_plus = float(theta_plus)
        self.tc_theta_decay = float(tc_theta_decay)
        self.theta_decay = math.exp(-self.dt / self.tc_theta_decay)
        self.register_buffer("theta", torch.zeros(self.shape))

    def threshold(self) -> torch.Tensor:
        return self.thresh + self.theta

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.theta.mul_(self.theta_decay)
        self.integrate(x)
        fired = self.fire_and_reset()
        if self.training:
            self.theta.add_(self.theta_plus * self.batch_sum(fired, dtype=self.theta.dtype))
        return fired.to(self.dtype)


@NeuronModel.register("diehl_cook", "bindsnet.diehl_and_cook", source="bindsnet")
class DiehlCookNodes(AdaptiveLIFNodes):
    """Diehl & Cook (2015) excitatory neurons: adaptive LIF with at most one spike per step.

    Dynamics and defaults as :class:`AdaptiveLIFNodes` (tc_decay=100 ms, theta_plus=0.05 mV,
    tc_theta_decay=1e7 ms). With ``one_spike`` every neuron that crosses threshold is reset
    and made refractory, but only one of them, chosen uniformly at random per sample, emits
    a spike (BindsNET's ``DiehlAndCookNodes``). Theta rises only for crossings, as there.
    """

    def __init__(self, n=1, *, tc_decay: float = 100.0, one_spike: bool = True, **kw):
        super().__init__(n, tc_decay=tc_decay, **kw)
        self.one_spike = bool(one_spike)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        s = super().step(x)
        # on the CPU a check is free and most steps have no crossing at all; on CUDA it would
        # be a host sync (and break graph capture), so the choice below always runs there
        if not self.one_spike or (not s.is_cuda and not self.batch_any(s)):
            return s
        flat = s.view(s.shape[0], -1)
        # uniform choice among the crossing neurons, without a host sync: the largest random
        # key among them wins; samples with no crossing keep no spike.
        keys = self.batch_rand_like(flat).masked_fill_(flat == 0, -1.0)
        winner = keys.argmax(1, keepdim=True)
        # the winner's own spike says whether anything crossed (keys of silent neurons are -1):
        # a gather instead of a second reduction over the neurons
        one = torch.zeros_like(flat).scatter_(1, winner, 1.0) * flat.gather(1, winner)
        return one.view_as(s)
