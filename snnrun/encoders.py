"""Encoders turn a batch of samples ``(B, *shape)`` into spike trains ``(T, B, *shape)``."""

from __future__ import annotations

import torch

from snnrun.errors import ConfigError
from snnrun.registry import Registry


class Encoder:
    """Base class. ``time`` is the length of one sample's presentation in ms, ``dt`` the step;
    the train has ``T = round(time / dt)`` steps."""

    registry: Registry = Registry("encoder")

    @classmethod
    def register(cls, name: str, *aliases: str):
        return cls.registry.register(name, *aliases)

    @classmethod
    def build(cls, node, key: str | None = None, **runtime) -> "Encoder":
        return cls.registry.build(node, key=key, **runtime)

    def __init__(self, time: float = 250.0, dt: float = 1.0):
        self.time, self.dt = float(time), float(dt)
        if self.dt <= 0 or self.time < self.dt:
            raise ConfigError(f"need 0 < dt <= time, got time={time}, dt={dt}", key="time")
        self.steps = int(round(self.time / self.dt))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@Encoder.register("poisson")
class PoissonEncoder(Encoder):
    """Rate code: pixel value p in [0, 1] fires as a Poisson process of ``p * intensity`` Hz.

    Each step of dt ms is a Bernoulli trial with probability ``min(1, p * intensity * dt / 1000)``
    (the Poisson process binned at dt, at most one spike per bin), so the expected count over
    ``time`` ms is ``p * intensity * time / 1000`` — BindsNET's mean rate for its
    ``PoissonEncoder`` fed ``intensity``-scaled images.
    """

    def __init__(self, time: float = 250.0, dt: float = 1.0, intensity: float = 128.0):
        super().__init__(time, dt)
        if intensity < 0:
            raise ConfigError(f"intensity must be >= 0 Hz, got {intensity}", key="intensity")
        self.intensity = float(intensity)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # the check syncs with the device, which a CUDA-graph capture forbids (data are in [0, 1])
        if not (x.is_cuda and torch.cuda.is_current_stream_capturing()) and (x < 0).any():
            raise ConfigError("poisson encoder needs non-negative inputs (pixel values in [0, 1])")
        p = (x * (self.intensity * self.dt / 1000.0)).clamp_(max=1.0)
        return torch.rand((self.steps, *x.shape), device=x.device) < p
