"""Encoders turn a batch of samples ``(B, *shape)`` into spike trains ``(T, B, *shape)``.

Every encoder keeps the sample's shape and makes ``T = round(time / dt)`` steps: the engine feeds
the trains to an input group of the data's shape and reads ``steps`` as the presentation length.
(SPAIC's ``MultipleSpikeToBinary``, (B, *shape, K) spike-time lists -> (T, B, *shape), and delta
modulation, whose steps are the sequence length, were removed: no dataset gives such inputs.)"""

from __future__ import annotations

import torch

from snnrun.engine.kernels import cpu_uniform
from snnrun.errors import ConfigError
from snnrun.model_schema import ENCODER_PARAMS
from snnrun.registry import Registered, Registry


class TimeWindow:
    """A presentation of ``time`` ms in steps of ``dt`` ms: ``steps = round(time / dt)``."""

    def __init__(self, time: float = 250.0, dt: float = 1.0):
        self.time, self.dt = float(time), float(dt)
        if self.dt <= 0 or self.time < self.dt:
            raise ConfigError(f"need 0 < dt <= time, got time={time}, dt={dt}", key="time")
        self.steps = int(round(self.time / self.dt))


class Encoder(Registered, TimeWindow):
    """Base class. ``time`` is the length of one sample's presentation in ms, ``dt`` the step;
    the train has ``T = round(time / dt)`` steps."""

    registry: Registry = Registry("encoder", ranges=ENCODER_PARAMS)  # snnrun/model_schema.py

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
        if x.is_cuda:
            return torch.rand((self.steps, *x.shape), device=x.device) < p
        return cpu_uniform.rand((self.steps, *x.shape)) < p  # torch.rand's numbers, drawn faster


def _steps_index(steps: int, device) -> torch.Tensor:
    return torch.arange(steps, device=device)


def _one_hot_in_time(t_idx: torch.Tensor, valid: torch.Tensor, steps: int) -> torch.Tensor:
    """Spike trains (T, *t_idx.shape) with one spike at step t_idx where valid."""
    t = _steps_index(steps, t_idx.device).view(-1, *([1] * t_idx.dim()))
    return (t == t_idx.unsqueeze(0)) & valid.unsqueeze(0)


@Encoder.register("bernoulli")
class BernoulliEncoder(Encoder):
    """Independent Bernoulli spikes: each step fires with probability p = max_prob * x, x in [0, 1].

    (BindsNET's ``BernoulliEncoder``.) Expected count over T steps: T max_prob x.
    """

    def __init__(self, time: float = 250.0, dt: float = 1.0, max_prob: float = 1.0):
        super().__init__(time, dt)
        if not 0.0 <= max_prob <= 1.0:
            raise ConfigError(f"max_prob is a probability in [0, 1], got {max_prob}", key="max_prob")
        self.max_prob = float(max_prob)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = (x * self.max_prob).clamp(0.0, 1.0)
        return torch.rand((self.steps, *x.shape), device=x.device) < p


@Encoder.register("latency")
class LatencyEncoder(Encoder):
    """Time-to-first-spike: one spike per input, stronger inputs earlier.

    For x in [0, 1] (values above ``threshold`` spike, the others stay silent)::

        linear:  t = round((1 - x) (T - 1))                     x = 1 fires at step 0
        log:     t = min(T - 1, round(tau ln(x / (x - threshold)) / dt))   (RC charging time)

    ``log`` is the time an RC circuit with time constant tau (ms) driven by x needs to reach
    ``threshold`` (snnTorch's latency code); ``linear`` is SPAIC's.
    """

    def __init__(self, time: float = 250.0, dt: float = 1.0, method: str = "linear",
                 threshold: float = 0.0, tau: float = 5.0):
        super().__init__(time, dt)
        if method not in ("linear", "log"):
            raise ConfigError(f"method must be 'linear' or 'log', got {method!r}", key="method")
        if method == "log" and not 0.0 < threshold < 1.0:
            raise ConfigError("the log latency code needs 0 < threshold < 1", key="threshold")
        self.method, self.threshold, self.tau = method, float(threshold), float(tau)

    def spike_steps(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0.0, 1.0)
        if self.method == "linear":
            t = torch.round((1.0 - x) * (self.steps - 1))
        else:
            ratio = x / (x - self.threshold).clamp_min(1e-12)
            t = torch.round(self.tau * torch.log(ratio.clamp_min(1.0)) / self.dt).clamp(max=self.steps - 1)
        return t.long()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _one_hot_in_time(self.spike_steps(x), x > self.threshold, self.steps)


@Encoder.register("relative_latency", "rank_order")
class RelativeLatencyEncoder(Encoder):
    """Latency relative to each sample's own range: its strongest input fires first (rank order).

    Per sample, with min/max over that sample's inputs::

        t = round((max - x) / (max - min) * (T - 1) * span)

    so spike order follows intensity rank whatever the contrast; inputs <= ``threshold`` stay
    silent; ``span`` in (0, 1] is the fraction of the window used (SPAIC's relative latency).
    """

    def __init__(self, time: float = 250.0, dt: float = 1.0, threshold: float = 0.0, span: float = 1.0):
        super().__init__(time, dt)
        if not 0.0 < span <= 1.0:
            raise ConfigError(f"span must be in (0, 1], got {span}", key="span")
        self.threshold, self.span = float(threshold), float(span)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1).float()
        hi = flat.max(1, keepdim=True).values
        lo = flat.min(1, keepdim=True).values
        rel = (hi - flat) / (hi - lo).clamp_min(1e-12)
        t = torch.round(rel * (self.steps - 1) * self.span).long().view_as(x)
        return _one_hot_in_time(t, x > self.threshold, self.steps)


@Encoder.register("constant_current")
class ConstantCurrentEncoder(Encoder):
    """A constant current for the whole window: I[t] = amplitude * x at every step (real-valued)."""

    def __init__(self, time: float = 250.0, dt: float = 1.0, amplitude: float = 1.0):
        super().__init__(time, dt)
        self.amplitude = float(amplitude)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() * self.amplitude).unsqueeze(0).expand(self.steps, *x.shape).contiguous()


@Encoder.register("direct", "float")
class DirectEncoder(Encoder):
    """Direct (analog) input: the sample itself at every step, I[t] = x (real-valued input layers;
    SpikingJelly's CSNN feeds the image to its first conv layer this way). Being the same at every
    step, the network computes what a static input drives through delay-0 connections once."""

    static = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(0).expand(self.steps, *x.shape).contiguous()


@Encoder.register("frames")
class FramesEncoder(Encoder):
    """Frames over time as input (binned event data: data=nmnist, dvs_gesture, shd): a sample
    ``x (F, *shape)`` holds F frames, and step t of T gets frame ``floor(t F / T)``, so F = T is
    one frame per step and F = 1 the same input at every step (a static image). With
    ``binary: true`` each value is clipped to 1 (a spike where a bin holds any event); ``scale``
    multiplies the counts otherwise: I[t] = scale * x[floor(t F / T)].
    """

    def __init__(self, time: float = 10.0, dt: float = 1.0, binary: bool = False, scale: float = 1.0):
        super().__init__(time, dt)
        self.binary, self.scale = bool(binary), float(scale)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ConfigError(f"frames need samples of (frames, ...) values, got a batch of shape {list(x.shape)}")
        frames = x.shape[1]
        idx = (_steps_index(self.steps, x.device) * frames) // self.steps
        seq = x.index_select(1, idx).transpose(0, 1).float()
        return seq.clamp(max=1.0) if self.binary else seq * self.scale if self.scale != 1.0 else seq


@Encoder.register("uniform")
class UniformEncoder(Encoder):
    """Regular (deterministic) spike trains at rate x * max_rate Hz, evenly spaced.

    Step t spikes when floor((t + 1) r dt / 1000) > floor(t r dt / 1000), r = x max_rate: the
    count after T steps is exactly floor(T r dt / 1000), with no Poisson noise (SPAIC's
    ``UniformEncoder``). At most one spike per step.
    """

    def __init__(self, time: float = 250.0, dt: float = 1.0, max_rate: float = 128.0):
        super().__init__(time, dt)
        if max_rate < 0:
            raise ConfigError(f"max_rate must be >= 0 Hz, got {max_rate}", key="max_rate")
        self.max_rate = float(max_rate)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        per_step = (x.float() * self.max_rate * self.dt / 1000.0).clamp(0.0, 1.0)
        t = torch.arange(self.steps + 1, device=x.device, dtype=per_step.dtype).view(-1, *([1] * x.dim()))
        # small epsilon so that exact multiples (e.g. rate 0.5/step at t = 2) count as reached
        counts = torch.floor(t * per_step.unsqueeze(0) + 1e-6)
        return counts[1:] > counts[:-1]


@Encoder.register("single_spike_to_binary")
class SingleSpikeToBinaryEncoder(Encoder):
    """Spike times -> binary trains: input value x is a spike time in ms (one spike per input).

    The spike lands at step round(x / dt); times < 0, NaN or >= ``time`` give no spike (SPAIC's
    ``SingleSpikeToBinary``, for datasets stored as spike times).
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        valid = torch.isfinite(x) & (x >= 0) & (x < self.time)
        t = torch.round(torch.nan_to_num(x, nan=-1.0) / self.dt).long()
        return _one_hot_in_time(t, valid, self.steps)
