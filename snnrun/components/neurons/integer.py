"""Integer-arithmetic LIF neurons (fixed point, bit-shift leak), as on digital neuromorphic chips."""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.lif import refractory_reset


def _fixed(value: float, scale: int) -> int:
    return int(round(value * scale))


@NeuronModel.register("lif_int")
class IntegerLIFNodes(NeuronModel):
    """LIF in integer arithmetic: voltages are int32 counts of 1/``scale`` mV.

    Each step, with V = round(v * scale) and X = round(x * scale)::

        V <- V - ((V - REST) >> decay_shift)      leak: floor division by 2^decay_shift
        V <- V + X            unless refractory
        s  = V >= THRESH;  V <- RESET, refractory for ``refrac`` ms where s
        V <- max(V, LBOUND)   if lbound is set

    The leak multiplies v - rest by about 1 - 2^-decay_shift per step, i.e. an effective time
    constant -dt / ln(1 - 2^-decay_shift); without ``decay_shift`` it is the nearest power of
    two to tc_decay / dt. ``v`` (float mV) mirrors V for monitors and decoders.
    """

    def __init__(self, n=1, *, rest: float = -65.0, reset: float = -65.0, thresh: float = -52.0,
                 refrac: float = 5.0, tc_decay: float = 100.0, decay_shift: int | None = None,
                 scale: int = 1000, lbound: float | None = None, **kw):
        super().__init__(n, **kw)
        if int(scale) < 1:
            raise ConfigError(f"scale must be a positive integer, got {scale}", key="scale")
        self.scale = int(scale)
        if decay_shift is None:
            if not tc_decay > 0:
                raise ConfigError(f"tc_decay must be > 0 ms, got {tc_decay}", key="tc_decay")
            decay_shift = max(0, round(math.log2(tc_decay / self.dt)))
        if int(decay_shift) < 0 or int(decay_shift) > 30:
            raise ConfigError(f"decay_shift must be an integer in 0..30, got {decay_shift}", key="decay_shift")
        self.decay_shift, self.tc_decay = int(decay_shift), float(tc_decay)
        self.rest, self.reset, self.thresh = (_fixed(v, self.scale) for v in (rest, reset, thresh))
        self.refrac = float(refrac)
        self.lbound = None if lbound is None else _fixed(lbound, self.scale)

    @property
    def effective_tc(self) -> float:
        f = 1.0 - 2.0 ** -self.decay_shift
        return 0.0 if f == 0 else -self.dt / math.log(f)

    def reset_dynamics(self) -> None:
        self.V = self.state_tensor(self.rest, dtype=torch.int32)
        self.refrac_count = self.state_tensor(0.0)
        self.v = self.V.to(self.dtype) / self.scale

    def threshold_int(self) -> torch.Tensor | int:
        return self.thresh

    def integrate_and_fire(self, x: torch.Tensor) -> torch.Tensor:
        X = torch.round(x * self.scale).to(torch.int32)
        self.V = self.V - torch.bitwise_right_shift(self.V - self.rest, self.decay_shift)
        self.V = self.V + X.masked_fill(self.refrac_count > 0, 0)
        self.refrac_count = self.refrac_count - self.dt
        fired = self.V >= self.threshold_int()
        self.V, self.refrac_count = refractory_reset(self.V, self.refrac_count, fired, refrac=self.refrac,
                                                     reset=self.reset, lbound=self.lbound)
        self.v = self.V.to(self.dtype) / self.scale
        return fired

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return self.integrate_and_fire(x).to(self.dtype)


@NeuronModel.register("diehl_cook_int")
class IntegerDiehlCookNodes(IntegerLIFNodes):
    """Diehl & Cook neurons in integer arithmetic: lif_int plus an integer adaptive threshold.

    THETA (int32, units of 1/``scale`` mV, one per neuron shared by the batch) rises by
    round(theta_plus * scale) per crossing while learning and decays as the voltage does,
    THETA <- THETA - (THETA >> theta_shift) with theta_shift = round(log2(tc_theta_decay / dt))
    (BindsNET's 1e7 ms gives a shift of 23: no decay for thetas below 2^23 counts);
    s = V >= THRESH + THETA; with ``one_spike`` one crossing neuron per sample spikes, as
    ``diehl_cook``.
    """

    def __init__(self, n=1, *, tc_decay: float = 100.0, theta_plus: float = 0.05, tc_theta_decay: float = 1e7,
                 one_spike: bool = True, **kw):
        super().__init__(n, tc_decay=tc_decay, **kw)
        if not tc_theta_decay > 0:
            raise ConfigError(f"tc_theta_decay must be > 0 ms, got {tc_theta_decay}", key="tc_theta_decay")
        self.theta_shift = min(30, max(0, round(math.log2(tc_theta_decay / self.dt))))
        self.theta_plus = _fixed(theta_plus, self.scale)
        self.one_spike = bool(one_spike)
        self.register_buffer("theta", torch.zeros(self.shape, dtype=torch.int32))

    def threshold_int(self) -> torch.Tensor:
        return self.thresh + self.theta

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.theta.sub_(torch.bitwise_right_shift(self.theta, self.theta_shift))
        fired = self.integrate_and_fire(x)
        if self.training:
            self.theta.add_(self.theta_plus * self.batch_sum(fired, dtype=torch.int32))
        s = fired.to(self.dtype)
        if not self.one_spike:
            return s
        flat = s.view(s.shape[0], -1)
        keys = self.batch_rand_like(flat).masked_fill_(flat == 0, -1.0)
        one = torch.zeros_like(flat).scatter_(1, keys.argmax(1, keepdim=True), 1.0) * flat.amax(1, keepdim=True)
        return one.view_as(s)


@NeuronModel.register("spaic.diehlandcook", source="spaic")
class SpaicDiehlAndCookIntNodes(NeuronModel):
    """SPAIC's integer Diehl & Cook neurons (spaic/Neuron/Neuron.py class DiehlAndCookModelInt,
    registered as ``diehlAndCook``): int32 voltages, bit-shift leak and input scaling.

    Each step (>> is an arithmetic shift, x truncated to an integer and clipped to
    [weight_sum_min, weight_sum_max])::

        th <- th >> 1 where th > max_threshold
        V  <- ((decay (V - v_rest)) >> shift_voltage) + v_rest
        V  <- V + ((x weight_sum_coef) >> shift_weight_sum_coef)   unless refractory
        refrac_count <- refrac_count - 1
        s   = V > th
        V  <- v_reset, refrac_count <- reset_refrac where s
        th <- th + thresh_plus sum_batch(s)
        V  <- max(V, lbound)

    Defaults (SPAIC 0.6.3): thresh = 213, max_threshold = 4915, decay = 1013 (1013/1024 per
    step), shift_voltage = 10, weight_sum_coef = 154, shift_weight_sum_coef = 10,
    weight_sum_min/max = -/+32767, v_reset = v_rest = 0, reset_refrac = 5 steps,
    thresh_plus = 66, lbound = -32767. th (one per neuron, shared by the batch) starts at
    ``thresh`` for every presentation: SPAIC does not keep it across runs (not a [stay]
    variable). snnrun's own integer Diehl & Cook is ``diehl_cook_int``. ``v`` (float) mirrors V.
    """

    def __init__(self, n=1, *, thresh: int = 213, max_threshold: int = 4915, decay: int = 1013,
                 shift_voltage: int = 10, weight_sum_coef: int = 154, shift_weight_sum_coef: int = 10,
                 weight_sum_min: int = -32767, weight_sum_max: int = 32767, v_reset: int = 0, v_rest: int = 0,
                 reset_refrac: int = 5, thresh_plus: int = 66, lbound: int = -32767, **kw):
        super().__init__(n, **kw)
        values = dict(thresh=thresh, max_threshold=max_threshold, decay=decay, shift_voltage=shift_voltage,
                      weight_sum_coef=weight_sum_coef, shift_weight_sum_coef=shift_weight_sum_coef,
                      weight_sum_min=weight_sum_min, weight_sum_max=weight_sum_max, v_reset=v_reset,
                      v_rest=v_rest, reset_refrac=reset_refrac, thresh_plus=thresh_plus, lbound=lbound)
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
                raise ConfigError(f"{name} must be a whole number (integer arithmetic), got {value!r}", key=name)
            setattr(self, name, int(value))
        for name in ("shift_voltage", "shift_weight_sum_coef"):
            if not 0 <= getattr(self, name) <= 30:
                raise ConfigError(f"{name} must be in 0..30, got {getattr(self, name)}", key=name)

    def reset_dynamics(self) -> None:
        self.V = self.state_tensor(0, dtype=torch.int32)
        self.refrac_count = self.state_tensor(0, dtype=torch.int32)
        self.th = torch.full(self.shape, self.thresh, dtype=torch.int32, device=self.device)
        self.v = self.V.to(self.dtype)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        x_int = x.to(torch.int32).clamp(self.weight_sum_min, self.weight_sum_max)
        self.th = torch.bitwise_right_shift(self.th, (self.th > self.max_threshold).to(torch.int32))
        V = torch.bitwise_right_shift(self.decay * (self.V - self.v_rest), self.shift_voltage) + self.v_rest
        drive = torch.bitwise_right_shift(x_int * self.weight_sum_coef, self.shift_weight_sum_coef)
        V = V + drive * (self.refrac_count <= 0).to(torch.int32)
        self.refrac_count = self.refrac_count - 1
        fired = V > self.th
        self.refrac_count = self.refrac_count.masked_fill(fired, self.reset_refrac)
        V = V.masked_fill(fired, self.v_reset)
        self.th = self.th + self.thresh_plus * self.batch_sum(fired.to(torch.int32), dtype=torch.int32)
        self.V = V.clamp_min(self.lbound)
        self.v = self.V.to(self.dtype)
        return fired.to(self.dtype)
