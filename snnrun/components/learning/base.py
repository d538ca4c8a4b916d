"""Local learning rules: called once per time step, after the neuron groups have updated."""

from __future__ import annotations

from typing import Sequence

import torch

from snnrun.errors import ConfigError
from snnrun.registry import Registered, Registry

REDUCTIONS = ("sum", "mean", "owner")


class LearningRule(Registered):
    """Base class of local rules acting on one connection.

    ``connection`` is the name of the connection in ``network.connections``; the builder
    hands in the connection object and its source and target groups. ``nu`` holds the
    learning rates ``[pre, post]``. ``reduction`` says how the per-sample updates of a batch
    combine into the one shared weight matrix: ``sum`` (BindsNET's default for batches),
    ``mean``, or ``owner`` (each postsynaptic neuron learns from at most one sample of the
    batch, the first that made it fire; rules that support it say so). ``weight_decay``
    shrinks weights by ``w <- w (1 - weight_decay dt)`` each step.
    After every update the connection's ``wmin``/``wmax`` clamp is applied.
    """

    registry: Registry = Registry("learning rule")
    supports_owner = False  # whether the rule implements the ``owner`` batch reduction
    data_parallel = None    # set by snnrun.engine.data_parallel in a data-parallel (torchrun) run

    def __init__(self, connection, *, source=None, target=None, dt: float = 1.0,
                 nu: float | Sequence[float] = (1e-4, 1e-2), reduction: str = "sum",
                 weight_decay: float = 0.0):
        self.connection = connection
        self.source, self.target = source, target
        self.dt = float(dt)
        nu = [float(nu), float(nu)] if isinstance(nu, (int, float)) else [float(v) for v in nu]
        if len(nu) != 2:
            raise ConfigError(f"nu must be [pre, post] (two numbers), got {nu}", key="nu")
        self.nu = nu
        if reduction not in REDUCTIONS or (reduction == "owner" and not self.supports_owner):
            raise ConfigError(f"unknown reduction '{reduction}'. Allowed: {', '.join(REDUCTIONS)}",
                              key="reduction")
        self.reduction = reduction
        self.weight_decay = float(weight_decay)

    def reset_state(self, batch_size: int) -> None:
        """Called by the network at the start of every presentation (per-sample rule state)."""

    def end_presentation(self) -> None:
        """Called by the network at the end of every presentation while learning (rules that
        update once per sample, e.g. the tempotron)."""

    def reduce(self, dw_batch: torch.Tensor) -> torch.Tensor:
        return dw_batch.sum(0) if self.reduction == "sum" else dw_batch.mean(0)

    def step(self) -> None:
        if self.data_parallel is None:
            self.update()
        else:  # this rank's share of the batch; the ranks' updates are summed (snnrun/engine/data_parallel.py)
            self.data_parallel.reduced_update(self)
        if self.weight_decay:
            self.connection.w.mul_(1.0 - self.weight_decay * self.dt)
        self.connection.clamp()

    def update(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
