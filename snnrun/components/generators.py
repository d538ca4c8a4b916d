"""Generators: input signals without a dataset (probe currents, background drive).

A generator builds ``(T, B, *shape)`` from nothing but its parameters::

    g = Generator.build({"type": "sin", "amplitude": 5, "freq": 10}, time=500, dt=1)
    x = g(batch_size=1, shape=(1,))            # (500, 1, 1) current, one value per step

Time is in ms, rates in Hz; ``t`` below is the time of step k, t = k dt.
"""

from __future__ import annotations

import math

import torch

from snnrun.components.encoders import TimeWindow
from snnrun.errors import ConfigError
from snnrun.registry import Registered, Registry


class Generator(Registered, TimeWindow):
    """Base class: ``__call__(batch_size, shape, device) -> (T, B, *shape)``, T = round(time / dt)."""

    registry: Registry = Registry("generator")

    def times(self, device=None) -> torch.Tensor:
        return torch.arange(self.steps, device=device, dtype=torch.float32) * self.dt

    def signal(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The value at times t (ms), shape (T,)."""
        raise NotImplementedError

    def __call__(self, batch_size: int = 1, shape=(1,), device=None) -> torch.Tensor:
        shape = tuple(shape) if isinstance(shape, (list, tuple)) else (int(shape),)
        sig = self.signal(self.times(device))
        return sig.view(-1, *([1] * (1 + len(shape)))).expand(self.steps, batch_size, *shape).contiguous()


@Generator.register("constant")
class ConstantGenerator(Generator):
    """I(t) = amplitude for the whole window."""

    def __init__(self, time: float = 250.0, dt: float = 1.0, amplitude: float = 1.0):
        super().__init__(time, dt)
        self.amplitude = float(amplitude)

    def signal(self, t):
        return torch.full_like(t, self.amplitude)


@Generator.register("step")
class StepGenerator(Generator):
    """I(t) = amplitude for onset <= t < offset, else 0 (offset null: until the end)."""

    def __init__(self, time: float = 250.0, dt: float = 1.0, amplitude: float = 1.0,
                 onset: float = 0.0, offset: float | None = None):
        super().__init__(time, dt)
        self.amplitude, self.onset = float(amplitude), float(onset)
        self.offset = math.inf if offset is None else float(offset)

    def signal(self, t):
        return torch.where((t >= self.onset) & (t < self.offset), self.amplitude, 0.0)


@Generator.register("sin", "sine")
class SinGenerator(Generator):
    """I(t) = offset + amplitude sin(2 pi freq t / 1000 + phase), freq in Hz, phase in rad."""

    def __init__(self, time: float = 250.0, dt: float = 1.0, amplitude: float = 1.0, freq: float = 10.0,
                 phase: float = 0.0, offset: float = 0.0):
        super().__init__(time, dt)
        self.amplitude, self.freq, self.phase, self.offset = float(amplitude), float(freq), float(phase), float(offset)

    def signal(self, t):
        return self.offset + self.amplitude * torch.sin(2 * math.pi * self.freq * t / 1000.0 + self.phase)


@Generator.register("ramp")
class RampGenerator(Generator):
    """I(t) rises linearly from ``start`` at t = 0 to ``stop`` at the last step."""

    def __init__(self, time: float = 250.0, dt: float = 1.0, start: float = 0.0, stop: float = 1.0):
        super().__init__(time, dt)
        self.start, self.stop = float(start), float(stop)

    def signal(self, t):
        span = max(self.time - self.dt, 1e-12)
        return self.start + (self.stop - self.start) * t / span


@Generator.register("poisson_generator")
class PoissonGenerator(Generator):
    """Poisson spike trains at ``rate`` Hz: each step spikes with probability rate dt / 1000.

    Every neuron and sample gets its own independent train (0/1 values, ``weight`` scales them).
    """

    def __init__(self, time: float = 250.0, dt: float = 1.0, rate: float = 10.0, weight: float = 1.0):
        super().__init__(time, dt)
        if rate < 0 or rate * dt / 1000.0 > 1.0:
            raise ConfigError(f"rate must be in [0, 1000 / dt] Hz, got {rate}", key="rate")
        self.rate, self.weight = float(rate), float(weight)

    def __call__(self, batch_size: int = 1, shape=(1,), device=None) -> torch.Tensor:
        shape = tuple(shape) if isinstance(shape, (list, tuple)) else (int(shape),)
        p = self.rate * self.dt / 1000.0
        return (torch.rand((self.steps, batch_size, *shape), device=device) < p).float() * self.weight
