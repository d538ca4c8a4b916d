"""Leaky integrate-and-fire neurons with BindsNET's semantics (voltages in mV, time in ms)."""

from __future__ import annotations

import math

import torch

from snnrun.components.neurons.base import NeuronModel


def refractory_reset(v: torch.Tensor, refrac_count: torch.Tensor, fired: torch.Tensor, *, refrac: float,
                     reset, lbound) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a neuron fired: v <- reset and refractory for ``refrac`` ms; then v >= lbound if set.
    Returns (v, refrac_count): the reset shared by BindsNET's refractory integrate-and-fire nodes."""
    refrac_count = refrac_count.masked_fill(fired, refrac)
    v = v.masked_fill(fired, reset)
    if lbound is not None:
        v = v.clamp_min(lbound)
    return v, refrac_count


@NeuronModel.register("lif", source="bindsnet")
class LIFNodes(NeuronModel):
    """Leaky integrate-and-fire with refractory period and hard reset.

    Each step of length dt (BindsNET's ``LIFNodes``)::

        v <- rest + (v - rest) * exp(-dt / tc_decay)          leak towards rest
        v <- v + x            unless refractory               input current (mV per step)
        s  = v >= thresh
        v <- reset, refractory for ``refrac`` ms where s
        v <- max(v, lbound)   if lbound is set

    With constant input I (and no refractoriness) the voltage after k steps is
    ``rest + I (1 - d^k) / (1 - d)``, d = exp(-dt / tc_decay): the first spike comes at the
    smallest k with ``I (1 - d^k) / (1 - d) >= thresh - rest``.
    """

    def __init__(self, n=1, *, rest: float = -65.0, reset: float = -65.0, thresh: float = -52.0,
                 refrac: float = 5.0, tc_decay: float = 100.0, lbound: float | None = None, **kw):
        super().__init__(n, **kw)
        self.rest, self.reset, self.thresh = float(rest), float(reset), float(thresh)
        self.refrac, self.tc_decay = float(refrac), float(tc_decay)
        self.lbound = None if lbound is None else float(lbound)
        self.decay = math.exp(-self.dt / self.tc_decay)
        self._leak_target = self.rest * (1.0 - self.decay)  # rest + (v - rest) d = v d + rest (1 - d)

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.rest)
        self.refrac_count = self.state_tensor(0.0)

    def threshold(self) -> torch.Tensor | float:
        return self.thresh

    def integrate(self, x: torch.Tensor) -> None:
        """Leak, then add the input of non-refractory neurons."""
        # each line makes a new tensor (recorded voltages stay valid); the in-place ops act on
        # those temporaries only, which saves kernel launches on the CPU's per-step path
        v = (self.v * self.decay).add_(self._leak_target)
        self.v = v.add_(x.masked_fill(self.refrac_count > 0, 0.0))
        self.refrac_count = self.refrac_count - self.dt

    def fire_and_reset(self) -> torch.Tensor:
        fired = self.v >= self.threshold()
        self.v, self.refrac_count = refractory_reset(self.v, self.refrac_count, fired, refrac=self.refrac,
                                                     reset=self.reset, lbound=self.lbound)
        return fired

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.integrate(x)
        return self.fire_and_reset().to(self.dtype)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, rest={self.rest}, reset={self.reset}, thresh={self.thresh}, "
                f"refrac={self.refrac}, tc_decay={self.tc_decay}")
