"""Decoders turn a readout group's activity into class predictions.

The label-assignment family (Diehl & Cook 2015) needs no trained readout weights: each neuron
is assigned the class for which it fired most (per training sample of that class); a test
sample is then classified by the spikes of the neurons assigned to each class.
"""

from __future__ import annotations

import torch

from snnrun.errors import ConfigError
from snnrun.registry import Registered, Registry


class LabelAssignment:
    """Per-neuron class statistics learned from training activity (saved in checkpoints).

    From spike counts ``c`` (samples x neurons) and labels, for each class k::

        rates[:, k]     = alpha * rates[:, k] + mean_{samples of class k} c
        proportions     = rates / rates.sum(1)      (rows with no spikes -> 0)
        assignments     = argmax_k proportions      (BindsNET's ``assign_labels``)
    """

    def __init__(self, n_neurons: int, n_classes: int, device=None):
        self.n_neurons, self.n_classes = int(n_neurons), int(n_classes)
        self.rates = torch.zeros(n_neurons, n_classes, device=device)
        self.proportions = torch.zeros(n_neurons, n_classes, device=device)
        self.assignments = torch.full((n_neurons,), -1, dtype=torch.long, device=device)

    def update(self, counts: torch.Tensor, labels: torch.Tensor, alpha: float = 0.0) -> None:
        counts = counts.reshape(counts.shape[0], -1).float().to(self.rates.device)
        onehot = torch.nn.functional.one_hot(labels.to(self.rates.device), self.n_classes).float()
        n_per_class = onehot.sum(0)
        mean_counts = (counts.t() @ onehot) / n_per_class.clamp_min(1.0)
        seen = n_per_class > 0
        self.rates[:, seen] = alpha * self.rates[:, seen] + mean_counts[:, seen]
        total = self.rates.sum(1, keepdim=True)
        self.proportions = torch.where(total > 0, self.rates / total.clamp_min(1e-12),
                                       torch.zeros_like(self.rates))
        self.assignments = self.proportions.argmax(1)

    def state_dict(self) -> dict:
        return {"rates": self.rates.cpu(), "proportions": self.proportions.cpu(),
                "assignments": self.assignments.cpu()}

    def load_state_dict(self, state: dict) -> None:
        dev = self.rates.device
        self.rates = state["rates"].to(dev)
        self.proportions = state["proportions"].to(dev)
        self.assignments = state["assignments"].to(dev)
        self.n_neurons, self.n_classes = self.rates.shape


class Decoder(Registered):
    """Base class: ``predict(counts (B, n), assignment) -> labels (B,)``."""

    registry: Registry = Registry("decoder")

    def predict(self, counts: torch.Tensor, assignment: LabelAssignment) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover


def _class_scores(counts: torch.Tensor, weights: torch.Tensor, assignment: LabelAssignment):
    """sum over neurons assigned to class k of counts * weight, divided by how many there are."""
    counts = counts.reshape(counts.shape[0], -1).float().to(weights.device)
    onehot = torch.nn.functional.one_hot(assignment.assignments, assignment.n_classes).float()
    n_assigned = onehot.sum(0)
    scores = counts @ (onehot * weights) / n_assigned.clamp_min(1.0)
    # classes without neurons can never win (BindsNET leaves their score at 0; with all
    # counts >= 0 a tie at 0 would otherwise pick class 0 for a silent sample)
    return scores.masked_fill(n_assigned == 0, -1.0)


@Decoder.register("all_activity")
class AllActivityDecoder(Decoder):
    """Predict argmax_k of the mean spike count of the neurons assigned to class k."""

    def predict(self, counts, assignment):
        return _class_scores(counts, torch.ones_like(assignment.proportions), assignment).argmax(1)


@Decoder.register("proportion_weighting")
class ProportionWeightingDecoder(Decoder):
    """Like all_activity, but each neuron's count is weighted by its proportion for class k."""

    def predict(self, counts, assignment):
        return _class_scores(counts, assignment.proportions, assignment).argmax(1)


class ReadoutDecoder(Decoder):
    """Decoders of a readout group's activity without label assignment (SPAIC's decoders).

    ``decode(spikes (T, B, n), v (T, B, n), dt)`` returns per-neuron values (B, n) (or a
    trajectory); ``predict_trains`` takes the argmax over classes, where a readout of
    n = k * n_classes neurons is read as n_classes populations of k neurons (summed).
    ``predict(counts, assignment)`` (what the train loop passes) works for count-based decoders.
    """

    needs_v = False

    def decode(self, spikes: torch.Tensor | None = None, v: torch.Tensor | None = None,
               dt: float = 1.0) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def class_scores(values: torch.Tensor, n_classes: int) -> torch.Tensor:
        values = values.reshape(values.shape[0], -1)
        n = values.shape[1]
        if n % n_classes:
            raise ConfigError(f"a readout of {n} neurons cannot be split into {n_classes} class populations",
                              key="model.readout")
        return values.reshape(values.shape[0], n_classes, n // n_classes).sum(2)

    def predict_trains(self, spikes=None, v=None, n_classes: int | None = None, dt: float = 1.0):
        values = self.decode(spikes=spikes, v=v, dt=dt)
        n_classes = n_classes or values.reshape(values.shape[0], -1).shape[1]
        return self.class_scores(values, n_classes).argmax(1)

    def predict(self, counts, assignment):
        raise ConfigError(f"decoder '{self.registered_name}' reads spike trains or voltages, but the "
                          "label-assignment loop only gives spike counts; use spike_count, spike_rate, "
                          "all_activity or proportion_weighting there", key="model.decoders")


def _trains(spikes):
    if spikes is None:
        raise ConfigError("this decoder needs the spike trains (T, B, n)", key="model.decoders")
    return spikes.float()


def _voltages(v):
    if v is None:
        raise ConfigError("this decoder needs the membrane potentials (T, B, n)", key="model.decoders")
    return v.float()


@Decoder.register("spike_count")
class SpikeCountDecoder(ReadoutDecoder):
    """Spike count per neuron, c = sum_t s[t]; the class whose population fires most wins."""

    def decode(self, spikes=None, v=None, dt=1.0):
        return _trains(spikes).sum(0)

    def predict(self, counts, assignment):
        return self.class_scores(counts.float(), assignment.n_classes).argmax(1)


@Decoder.register("spike_rate")
class SpikeRateDecoder(SpikeCountDecoder):
    """Firing rate per neuron in Hz: r = 1000 sum_t s[t] / (T dt)."""

    def decode(self, spikes=None, v=None, dt=1.0):
        s = _trains(spikes)
        return s.sum(0) * (1000.0 / (s.shape[0] * dt))


@Decoder.register("first_spike")
class FirstSpikeDecoder(ReadoutDecoder):
    """Time-to-first-spike: t_first = dt * min{t : s[t] > 0} (T dt if silent); earliest wins.

    ``decode`` returns the first-spike times (ms); the class score is minus the earliest time.
    """

    def decode(self, spikes=None, v=None, dt=1.0):
        s = _trains(spikes) > 0
        T = s.shape[0]
        steps = torch.arange(T, device=s.device).view(-1, *([1] * (s.dim() - 1))).expand_as(s)
        first = torch.where(s, steps, torch.full_like(steps, T)).min(0).values
        return first.float() * dt

    def predict_trains(self, spikes=None, v=None, n_classes=None, dt=1.0):
        t = self.decode(spikes=spikes, dt=dt)
        t = t.reshape(t.shape[0], -1)
        n_classes = n_classes or t.shape[1]
        return (-t.reshape(t.shape[0], n_classes, -1).min(2).values).argmax(1)


@Decoder.register("final_voltage")
class FinalVoltageDecoder(ReadoutDecoder):
    """Membrane potential at the last step, v[T-1] (non-spiking readouts)."""

    needs_v = True

    def decode(self, spikes=None, v=None, dt=1.0):
        return _voltages(v)[-1]


@Decoder.register("voltage_sum")
class VoltageSumDecoder(ReadoutDecoder):
    """Membrane potential summed over time, sum_t v[t]."""

    needs_v = True

    def decode(self, spikes=None, v=None, dt=1.0):
        return _voltages(v).sum(0)


@Decoder.register("v_trajectory")
class VTrajectoryDecoder(ReadoutDecoder):
    """The whole membrane trajectory v (B, T, n); classes by the maximum over time, max_t v[t]."""

    needs_v = True

    def decode(self, spikes=None, v=None, dt=1.0):
        return _voltages(v).movedim(0, 1)

    def predict_trains(self, spikes=None, v=None, n_classes=None, dt=1.0):
        peak = _voltages(v).max(0).values
        n_classes = n_classes or peak.reshape(peak.shape[0], -1).shape[1]
        return self.class_scores(peak, n_classes).argmax(1)


@Decoder.register("time_spike_count")
class TimeSpikeCountDecoder(ReadoutDecoder):
    """Spike count weighted towards early spikes: c = sum_t s[t] (T - t) / T.

    A spike at the first step counts 1, one at the last 1/T: earlier evidence weighs more.
    """

    def decode(self, spikes=None, v=None, dt=1.0):
        s = _trains(spikes)
        T = s.shape[0]
        w = (T - torch.arange(T, device=s.device, dtype=s.dtype)) / T
        return (s * w.view(-1, *([1] * (s.dim() - 1)))).sum(0)


@Decoder.register("time_softmax")
class TimeSoftmaxDecoder(ReadoutDecoder):
    """Softmax over neurons of the time-weighted spike count: p = softmax(sum_t s[t] (T - t) / T).

    Returns class probabilities (rows sum to 1); a differentiable readout of early firing.
    """

    def decode(self, spikes=None, v=None, dt=1.0):
        c = TimeSpikeCountDecoder().decode(spikes=spikes)
        return torch.softmax(c.reshape(c.shape[0], -1), dim=1).view_as(c)


def fire_order(train: torch.Tensor) -> list[int]:
    """Neuron indices in firing order for one sample's train (T, n); ties by index."""
    t_idx, n_idx = torch.nonzero(train.reshape(train.shape[0], -1) > 0, as_tuple=True)
    return n_idx.tolist()  # nonzero is row-major: sorted by time, then neuron


@Decoder.register("ngram")
class NgramDecoder(ReadoutDecoder):
    """n-gram firing-order classifier (BindsNET's ``ngram``).

    Training: for each sample, every run of ``n`` consecutive neurons in its firing order
    (neurons sorted by spike time) adds 1 to score[ngram][label]. Test: the class with the
    largest sum of the scores of the sample's n-grams wins (BindsNET skips the last n-gram of
    the test order; here all are used). Scores live in ``self.scores``.
    """

    def __init__(self, n: int = 2):
        if int(n) < 1:
            raise ConfigError(f"n must be >= 1, got {n}", key="n")
        self.n = int(n)
        self.scores: dict[tuple[int, ...], torch.Tensor] = {}
        self.n_classes = 0

    def _grams(self, order: list[int]):
        return zip(*(order[k:] for k in range(self.n)))

    def update(self, spikes: torch.Tensor, labels: torch.Tensor, n_classes: int) -> None:
        """Add the n-grams of a batch of trains (T, B, n) with their labels."""
        self.n_classes = max(self.n_classes, int(n_classes))
        for b, label in enumerate(labels.tolist()):
            for gram in self._grams(fire_order(spikes[:, b])):
                row = self.scores.setdefault(gram, torch.zeros(self.n_classes))
                if row.numel() < self.n_classes:
                    row = self.scores[gram] = torch.cat([row, torch.zeros(self.n_classes - row.numel())])
                row[label] += 1

    def decode(self, spikes=None, v=None, dt=1.0):
        s = _trains(spikes)
        out = torch.zeros(s.shape[1], max(self.n_classes, 1))
        for b in range(s.shape[1]):
            for gram in self._grams(fire_order(s[:, b])):
                if gram in self.scores:
                    out[b, : self.scores[gram].numel()] += self.scores[gram]
        return out

    def predict_trains(self, spikes=None, v=None, n_classes=None, dt=1.0):
        return self.decode(spikes=spikes).argmax(1)


# -- temporary adapter to the engine's interface (replaced by the decoders branch) -----------
from dataclasses import dataclass  # noqa: E402


@dataclass
class Readout:
    counts: torch.Tensor
    spikes: torch.Tensor | None = None
    v: torch.Tensor | None = None
    dt: float = 1.0


def _needs(self):
    if isinstance(self, (AllActivityDecoder, ProportionWeightingDecoder)):
        return frozenset({"assignment"})
    if isinstance(self, SpikeCountDecoder) and type(self) is SpikeCountDecoder:
        return frozenset()
    return frozenset({"v"} if getattr(self, "needs_v", False) else {"spikes"})


def _predict(self, readout, assignment=None, n_classes=None):
    if isinstance(self, (AllActivityDecoder, ProportionWeightingDecoder)):
        return self._old_predict(readout.counts, assignment)
    if type(self) is SpikeCountDecoder:
        return self.class_scores(readout.counts.float(), n_classes).argmax(1)
    return self.predict_trains(spikes=readout.spikes, v=readout.v, n_classes=n_classes, dt=readout.dt)


for _cls in (AllActivityDecoder, ProportionWeightingDecoder):
    _cls._old_predict = _cls.predict
for _cls in [c for c in list(globals().values()) if isinstance(c, type) and issubclass(c, Decoder)]:
    _cls.predict = _predict
Decoder.needs = property(_needs)
Decoder.check = lambda self, n, k: None
