"""Exponential moving average of a model's weights, used for validation, test and the saved model.

After every optimiser step (Polyak & Juditsky 1992; as timm's ``ModelEmaV2``, with its warm-up)::

    d_t   = min(decay, (1 + t) / (10 + t))          t = optimiser steps so far (1, 2, ...)
    ema_t = d_t ema_{t-1} + (1 - d_t) w_t

over every trainable parameter and the batch-norm running statistics. The warm-up keeps the
first steps from averaging in the random initialisation for long: d_1 = 0.18, d_100 = 0.92. An
average over the last ~1/(1 - decay) steps is a model trained longer at a small learning rate,
without training longer.

Everything runs on the device with no host sync (the step counter is a tensor), so the update is
part of a captured training step (snnrun/engine/graphed_step.py). :meth:`swapped` exchanges the
live and the averaged values in place (the same tensors: captured graphs keep reading them).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn


def averaged_tensors(model: nn.Module) -> list[torch.Tensor]:
    """What is averaged: the trainable parameters and batch-norm running means and variances."""
    out = [p for p in model.parameters() if p.requires_grad]
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            out += [m.running_mean, m.running_var]
    return out


class WeightAverage:
    """The averaged copy of ``model``'s tensors; see the module docstring."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.live = [t.detach() for t in averaged_tensors(model)]
        self.avg = [t.clone() for t in self.live]
        self.steps = torch.zeros((), dtype=torch.float32, device=self.live[0].device)

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        d = torch.clamp((1 + self.steps) / (10 + self.steps), max=self.decay)
        diff = torch._foreach_sub(self.live, self.avg)
        torch._foreach_mul_(diff, 1 - d)
        torch._foreach_add_(self.avg, diff)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange live and averaged values in place."""
        held = [t.clone() for t in self.live]
        torch._foreach_copy_(self.live, self.avg)
        torch._foreach_copy_(self.avg, held)

    @contextlib.contextmanager
    def swapped(self):
        """The averaged weights in the model for the block's duration, the live ones after."""
        self.swap()
        try:
            yield
        finally:
            self.swap()

    def state_dict(self) -> dict[str, Any]:
        return {"avg": [t.clone() for t in self.avg], "steps": self.steps.clone()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        avg = state["avg"]
        if len(avg) != len(self.avg) or any(a.shape != b.shape for a, b in zip(avg, self.avg)):
            raise ValueError("the saved weight average does not fit this model")
        for a, b in zip(self.avg, avg):
            a.copy_(b)
        self.steps.copy_(state["steps"])
