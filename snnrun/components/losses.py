"""Decoders with losses for gradient training: how a readout's activity becomes logits and a loss.

Each takes the model's output ``{"out": (T, B, C), "v": (T, B, C) or None}`` — the readout layer's
spikes over time and (for membrane losses) its membrane potential — and gives
``loss(output, y)`` (a scalar, differentiable through the surrogate spikes) and
``predict(output)`` (class labels). ``C`` is the number of classes.

A readout of ``k * C`` neurons is read as C populations of k consecutive neurons each, and a
class's score is the mean of its population's per-neuron scores: the voting layer of Fang et al.
(2021, PLIF: FC100 then AvgPool(10) for 10 classes), e.g. the firing rate
``r_c = (1/k) sum_{i in c} (1/T) sum_t s_i[t]``. ``check(n_readout, n_classes)`` sets k at build time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnrun.components.decoders import check_populations
from snnrun.errors import ConfigError
from snnrun.registry import Registered, Registry

Output = dict


class Loss(Registered):
    """Base class. ``needs_v`` says whether the readout's membrane potential must be recorded."""

    registry: Registry = Registry("loss")
    needs_v = False
    k = 1  # readout neurons per class (check)

    def check(self, n_readout: int, n_classes: int) -> None:
        """Read a readout of k * n_classes neurons as class populations (ConfigError otherwise)."""
        self.k = check_populations(n_readout, n_classes, f"loss '{self.name}'", key="model.learner.loss")

    def neuron_scores(self, output: Output) -> torch.Tensor:  # pragma: no cover - abstract
        """(B, n) per-neuron scores of the readout."""
        raise NotImplementedError

    def scores(self, output: Output) -> torch.Tensor:
        """(B, C) class scores, each the mean over the class's population; the prediction is their argmax."""
        s = self.neuron_scores(output)
        return s if self.k == 1 else s.reshape(s.shape[0], -1, self.k).mean(2)

    def loss(self, output: Output, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.scores(output).float(), y)

    def predict(self, output: Output) -> torch.Tensor:
        return self.scores(output).argmax(1)

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__)


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(2) if t.dim() > 2 else t.unsqueeze(-1)  # (T, B, n); empty batches too


@Loss.register("spike_count_ce", "ce_count")
class SpikeCountCE(Loss):
    """Cross-entropy on spike counts (snnTorch's ce_count_loss).

    logits_k = scale * sum_t s_k[t]; predicts the class whose neuron fired most."""

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def neuron_scores(self, output):
        return self.scale * _flat(output["out"]).sum(0)


@Loss.register("rate_mse", "mse_rate")
class RateMSE(Loss):
    """Mean squared error between firing rates and on/off target rates (SpikingJelly's examples).

    r_k = mean_t s_k[t]; the target is ``on_rate`` for the label's neuron and ``off_rate`` for the
    others (SpikingJelly's MNIST examples: 1 and 0); predicts the highest rate."""

    def __init__(self, on_rate: float = 1.0, off_rate: float = 0.0):
        self.on_rate, self.off_rate = float(on_rate), float(off_rate)

    def neuron_scores(self, output):
        return _flat(output["out"]).mean(0)

    def loss(self, output, y):
        r = self.scores(output).float()
        target = torch.full_like(r, self.off_rate)
        target.scatter_(1, y.unsqueeze(1), self.on_rate)
        return F.mse_loss(r, target)


MEMBRANE_MODES = ("final", "max", "mean")


@Loss.register("membrane_ce", "voltage_ce")
class MembraneCE(Loss):
    """Cross-entropy on the readout's membrane potential (final, max or mean over time).

    logits = scale * v[T-1] (``mode: final``), max_t v[t] (``max``) or mean_t v[t] (``mean``). Use
    with a non-spiking readout (``leaky_integrator``) or any neuron layer (v after its reset)."""

    needs_v = True

    def __init__(self, mode: str = "max", scale: float = 1.0):
        if mode not in MEMBRANE_MODES:
            raise ConfigError(f"unknown mode '{mode}'. Allowed: {', '.join(MEMBRANE_MODES)}", key="mode")
        self.mode, self.scale = mode, float(scale)

    def neuron_scores(self, output):
        v = output.get("v")
        if v is None:
            raise ConfigError("membrane_ce needs a neuron layer as the model's last layer (its membrane "
                              "potential is the readout)", key="model.loss")
        v = _flat(v)
        red = {"final": lambda: v[-1], "max": lambda: v.amax(0), "mean": lambda: v.mean(0)}[self.mode]()
        return self.scale * red


def first_spike_times(spikes: torch.Tensor) -> torch.Tensor:
    """Time of each neuron's first spike, (T, B, C) -> (B, C); T for a neuron that never fires.

    ``t_first = sum_t t s[t] prod_{t'<t} (1 - s[t']) + T prod_t (1 - s[t])``: exact for binary
    spikes and differentiable in them (through the surrogate), so an earlier spike can be learned.
    """
    T = spikes.shape[0]
    silent_before = torch.cumprod(1 - spikes, 0)  # prod_{t' <= t} (1 - s[t'])
    before = torch.cat([torch.ones_like(spikes[:1]), silent_before[:-1]])  # prod_{t' < t}
    t = torch.arange(T, device=spikes.device, dtype=spikes.dtype).view(T, *([1] * (spikes.dim() - 1)))
    return (t * spikes * before).sum(0) + T * silent_before[-1]


@Loss.register("first_spike_ce", "ttfs_ce")
class FirstSpikeCE(Loss):
    """Time-to-first-spike loss: the label's neuron should fire first (snnTorch's ce_temporal_loss).

    Cross-entropy on logits = -scale * t_first; predicts the earliest-firing class."""

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def neuron_scores(self, output):
        return -self.scale * first_spike_times(_flat(output["out"]).float())
