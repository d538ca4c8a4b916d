"""SPAIC's models of the Darwin neuromorphic chip (spaic/Neuron/Neuron.py, SPAIC 0.6.3):
``darwin_clif``, ``darwin_alif`` and ``darwin_random``. Voltages are 16-bit integers held in
floats, decays are rounded to the chip's fixed point, and v starts uniformly at random."""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel


def quantize_16(x: torch.Tensor) -> torch.Tensor:
    """SPAIC's quantize_16: round and saturate to a signed 16-bit integer (-2^15 .. 2^15)."""
    return torch.round(torch.clamp(x + 2.0 ** 15, 0.0, 2.0 ** 16)) - 2.0 ** 15


def fixed_decay(tau: float, dt: float, bits: int, key: str) -> float:
    """exp(-dt / tau) rounded to ``bits`` fractional bits, as the chip stores it."""
    if not tau > 0:
        raise ConfigError(f"{key} must be > 0 ms, got {tau}", key=key)
    return round(math.exp(-dt / tau) * 2.0 ** bits) / 2.0 ** bits


class _DarwinNodes(NeuronModel):
    """Shared: v starts uniformly in ``v_init`` ([low, high], SPAIC's) or at a given number."""

    v_range: tuple[float, float] = (10000.0, 15000.0)

    def __init__(self, n=1, *, v_th: float, v_init=None, **kw):
        super().__init__(n, **kw)
        self.v_th = float(v_th)
        if v_init is None:
            v_init = list(self.v_range)
        if isinstance(v_init, (list, tuple)):
            if len(v_init) != 2 or not float(v_init[0]) <= float(v_init[1]):
                raise ConfigError(f"v_init is a number or a range [low, high], got {v_init!r}", key="v_init")
            self.v_init = (float(v_init[0]), float(v_init[1]))
        else:
            self.v_init = (float(v_init), float(v_init))

    def reset_dynamics(self) -> None:
        low, high = self.v_init
        self.v = low + (high - low) * torch.rand(self.batch_size, *self.shape, dtype=self.dtype).to(self.device)

    def fire(self, v: torch.Tensor, thresh) -> torch.Tensor:
        s = (v > thresh).to(self.dtype)
        self.v = v - v * s
        return s


@NeuronModel.register("spaic.darwin_clif", source="spaic")
class DarwinCLIFNodes(_DarwinNodes):
    """SPAIC's Darwin current LIF (class Darwin_CLIF), 16-bit fixed point.

    Each step, with P0 = round(256 exp(-dt/tau_m)) / 256, P4 = round(256 exp(-dt/tau_s)) / 256::

        i <- q16(P4 i + x)
        v <- q16(P0 v + i + P1)
        s  = v > v_th;   v <- 0 where s

    q16 rounds and saturates to 16 bits; P1 = round(2^15 bias) / 2 * 15 (SPAIC's expression,
    kept as it is; 0 at the default bias 0). Defaults (SPAIC 0.6.3): tau_m = 12, tau_s = 8 ms,
    bias = 0, v_th = 16384; v starts uniformly in [10000, 15000] (``v_init``).
    """

    def __init__(self, n=1, *, tau_m: float = 12.0, tau_s: float = 8.0, bias: float = 0.0,
                 v_th: float = 16384.0, **kw):
        super().__init__(n, v_th=v_th, **kw)
        self.tau_m, self.tau_s, self.bias = float(tau_m), float(tau_s), float(bias)
        self.p0 = fixed_decay(self.tau_m, self.dt, 8, "tau_m")
        self.p4 = fixed_decay(self.tau_s, self.dt, 8, "tau_s")
        self.p1 = round(self.bias * 2.0 ** 15) / 2.0 * 15

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.i = self.state_tensor(0.0)

    def charge(self, x: torch.Tensor) -> torch.Tensor:
        self.i = quantize_16(self.i * self.p4 + x)
        return quantize_16(self.v * self.p0 + self.i + self.p1)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return self.fire(self.charge(x), self.v_th)


@NeuronModel.register("spaic.darwin_alif", source="spaic")
class DarwinALIFNodes(DarwinCLIFNodes):
    """SPAIC's Darwin adaptive-threshold LIF (class Darwin_ALIF): ``spaic.darwin_clif`` with a
    per-neuron threshold that relaxes and jumps at spikes.

    Each step, after the darwin_clif charge (i, v as there)::

        s      = v > th;   v <- 0 where s
        th    <- P2 th + C1 + C2 s         P2 = 0.999, C1 = round(0.001 v_th), C2 = round(0.2 v_th)

    th starts at v_th for every sample (SPAIC's state variable). Defaults as darwin_clif; v
    starts uniformly in [-30000, 15000].
    """

    v_range = (-30000.0, 15000.0)

    def __init__(self, n=1, **kw):
        super().__init__(n, **kw)
        self.p2, self.c1, self.c2 = 0.999, float(round(self.v_th * 0.001)), float(round(self.v_th * 0.2))

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.th = self.state_tensor(self.v_th)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fire(self.charge(x), self.th)
        self.th = self.p2 * self.th + self.c1 + s * self.c2
        return s


@NeuronModel.register("spaic.darwin_random", source="spaic")
class DarwinRandomNodes(_DarwinNodes):
    """SPAIC's Darwin random spike source (class Darwin_Random): a leaky voltage driven by noise;
    the input is not used.

    Each step, with P0 = round(2^16 exp(-dt/tau_m)) / 2^16 and u uniform in [0, 1)::

        v <- P0 v + round(std u - std / 2) + bias
        s  = v > v_th;   v <- 0 where s

    Defaults (SPAIC 0.6.3): tau_m = 10 ms, bias = 0, std = 0 (both rounded to integers),
    v_th = 15000; v starts uniformly in [10000, 15000].
    """

    def __init__(self, n=1, *, tau_m: float = 10.0, bias: float = 0.0, std: float = 0.0,
                 v_th: float = 15000.0, **kw):
        super().__init__(n, v_th=v_th, **kw)
        self.tau_m = float(tau_m)
        self.p0 = fixed_decay(self.tau_m, self.dt, 16, "tau_m")
        self.bias, self.std = float(round(bias)), float(round(std))

    def noise(self) -> torch.Tensor:
        return torch.round(self.std * self.batch_rand_like(self.v) - self.std / 2.0)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return self.fire(self.p0 * self.v + self.noise() + self.bias, self.v_th)
