"""Decoders turn what the engine recorded of the readout group into class predictions.

One interface for every decoder: for each batch the engine records a :class:`Readout` of the
readout group (always the spike counts; the spike trains and membrane potentials only when a
decoder's ``needs`` names them) and calls ``decoder.predict(readout, assignment, n_classes)``,
which returns one class label per sample. ``decoder.check(n_readout, n_classes)`` runs at build
time and rejects a readout the decoder cannot read.

Two families:

* label assignment (Diehl & Cook 2015, BindsNET's ``all_activity`` / ``proportion_weighting``):
  no trained readout weights; each neuron is assigned the class for which it fired most
  (:class:`LabelAssignment`, learned by the engine from training counts), and a test sample is
  classified by the spikes of the neurons assigned to each class. Any readout size works.
* class populations (SPAIC's decoders): a readout of n = k * n_classes neurons is read as
  n_classes populations of k consecutive neurons (neurons ``c*k .. c*k + k - 1`` belong to class
  ``c``, SPAIC's ``pop_size`` layout). ``decode(readout)`` gives one value per neuron (B, n), the
  values are summed per population, and the class with the largest sum wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snnrun.errors import ConfigError
from snnrun.registry import Registered, Registry

#: What a decoder may ask the engine for, besides the spike counts it always gets.
NEEDS = frozenset({"spikes", "v", "assignment"})


@dataclass
class Readout:
    """What the engine recorded of the readout group for one batch.

    ``steps`` is the number of simulation steps T of the batch. It is needed only to turn counts
    into rates (``spike_rate``); when left out it is taken from ``spikes`` or ``v`` if either was
    recorded. Trains and potentials of a readout group with a shape (T, B, *shape) are read
    flattened to (T, B, n).
    """

    counts: torch.Tensor                 # (B, n) spike counts, always present
    spikes: torch.Tensor | None = None   # (T, B, n) spike trains, when a decoder needs them
    v: torch.Tensor | None = None        # (T, B, n) membrane potential after each step, when needed
    dt: float = 1.0                      # ms per step
    steps: int | None = None             # T, steps per sample

    @property
    def n_steps(self) -> int:
        if self.steps is not None:
            return int(self.steps)
        for x in (self.spikes, self.v):
            if x is not None:
                return int(x.shape[0])
        raise ValueError("Readout.steps is not set and neither spikes nor v were recorded: "
                         "the number of steps T is unknown")

    def values(self, name: str) -> torch.Tensor:
        """``counts`` as (B, n), or ``spikes`` / ``v`` as (T, B, n), in float.

        A decoder asks only for what its ``needs`` declares; a missing one is an engine bug."""
        x = getattr(self, name)
        if x is None:
            raise ValueError(f"the decoder reads readout.{name}, which the engine did not record "
                             f"(record it when '{name}' is in a decoder's needs)")
        x = x.float()
        return x.reshape(x.shape[0], -1) if name == "counts" else x.reshape(x.shape[0], x.shape[1], -1)


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
        # where() rather than rates[:, seen] = ...: boolean indexing would wait for the device
        self.rates = torch.where(seen, alpha * self.rates + mean_counts, self.rates)
        total = self.rates.sum(1, keepdim=True)
        self.proportions = torch.where(total > 0, self.rates / total.clamp_min(1e-12),
                                       torch.zeros_like(self.rates))
        self.assignments = self.proportions.argmax(1)

    def state_dict(self) -> dict:
        """Copies of the statistics on their device (a checkpoint moves them to the host without
        stalling the device: snnrun/engine/deferred.py)."""
        return {"rates": self.rates.clone(), "proportions": self.proportions.clone(),
                "assignments": self.assignments.clone()}

    def load_state_dict(self, state: dict) -> None:
        dev = self.rates.device
        self.rates = state["rates"].to(dev)
        self.proportions = state["proportions"].to(dev)
        self.assignments = state["assignments"].to(dev)
        self.n_neurons, self.n_classes = self.rates.shape


class Decoder(Registered):
    """Base class. ``predict(readout, assignment, n_classes) -> labels (B,)``.

    ``needs`` is the subset of :data:`NEEDS` the engine must provide: ``"spikes"`` / ``"v"``
    (record the readout's trains / membrane potentials into the :class:`Readout`) and
    ``"assignment"`` (pass a learned :class:`LabelAssignment`; otherwise ``None`` may be passed).
    Subclasses implement ``class_scores`` (B, n_classes); ``predict`` is its argmax (ties and
    all-zero rows go to the lowest class index).
    """

    registry: Registry = Registry("decoder")
    needs: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not set(cls.needs) <= NEEDS:
            raise TypeError(f"{cls.__name__}.needs has {sorted(set(cls.needs) - NEEDS)}; "
                            f"allowed: {sorted(NEEDS)}")

    @property
    def name(self) -> str:
        """The registered name (a class built by ``_target_`` goes by its class name)."""
        return vars(type(self)).get("registered_name", type(self).__name__)

    def check(self, n_readout: int, n_classes: int) -> None:
        """Build time: raise ConfigError(key="model.decoders") if this decoder cannot read a
        readout of ``n_readout`` neurons for ``n_classes`` classes."""

    def class_scores(self, readout: Readout, assignment: LabelAssignment | None,
                     n_classes: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, readout: Readout, assignment: LabelAssignment | None, n_classes: int) -> torch.Tensor:
        return self.class_scores(readout, assignment, int(n_classes)).argmax(1)


def decoder_needs(decoders) -> frozenset[str]:
    """Union of the ``needs`` of some decoders: what the engine must record / pass."""
    out: frozenset[str] = frozenset()
    for d in decoders:
        out |= d.needs
    return out


# --------------------------------------------------------------------------- label assignment

class AssignmentDecoder(Decoder):
    """Label-assignment decoders: class k's score is the mean over the neurons assigned to k of
    ``counts * weight[:, k]`` (``weights`` per subclass). Classes with no assigned neuron score
    -1 and never win (BindsNET leaves them at 0, which with counts >= 0 would make a silent
    sample tie and pick class 0 even when class 0 has no neurons)."""

    needs = frozenset({"assignment"})

    def weights(self, assignment: LabelAssignment) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def class_scores(self, readout, assignment, n_classes):
        if assignment is None:
            raise ValueError(f"decoder '{self.name}' needs a LabelAssignment")
        if assignment.n_classes != n_classes:
            raise ValueError(f"the label assignment has {assignment.n_classes} classes, not {n_classes}")
        weights = self.weights(assignment)
        counts = readout.values("counts").to(weights.device)
        onehot = torch.nn.functional.one_hot(assignment.assignments, n_classes).float()
        n_assigned = onehot.sum(0)
        scores = counts @ (onehot * weights) / n_assigned.clamp_min(1.0)
        return scores.masked_fill(n_assigned == 0, -1.0)


@Decoder.register("all_activity")
class AllActivityDecoder(AssignmentDecoder):
    """Mean spike count of the neurons assigned to each class; the largest wins (Diehl & Cook 2015).

    BindsNET ``all_activity``: score_k = sum_{i: a_i = k} c_i / |{i: a_i = k}|.
    """

    def weights(self, assignment):
        return torch.ones_like(assignment.proportions)


@Decoder.register("proportion_weighting")
class ProportionWeightingDecoder(AssignmentDecoder):
    """all_activity with each count weighted by its neuron's proportion for the class (BindsNET).

    BindsNET ``proportion_weighting``: score_k = sum_{i: a_i = k} p_ik c_i / |{i: a_i = k}|.
    """

    def weights(self, assignment):
        return assignment.proportions


# --------------------------------------------------------------------------- class populations

def check_populations(n_readout: int, n_classes: int, name: str = "decoder 'decoder'",
                      key: str = "model.decoders") -> int:
    """Neurons per class population, k = n_readout / n_classes; ConfigError if it doesn't split."""
    n_readout, n_classes = int(n_readout), int(n_classes)
    if n_classes < 1 or n_readout < n_classes or n_readout % n_classes:
        raise ConfigError(f"{name} reads the readout as one population of k neurons per class "
                          f"(n = k * n_classes), but a readout of {n_readout} neurons cannot be split into "
                          f"{n_classes} classes; use a readout of a multiple of {n_classes} neurons or a "
                          "label-assignment decoder (all_activity, proportion_weighting)",
                          key=key)
    return n_readout // n_classes


def population_sums(values: torch.Tensor, n_classes: int, name: str = "decoder") -> torch.Tensor:
    """(B, n) per-neuron values -> (B, n_classes): the sum over each class's k consecutive neurons."""
    values = values.reshape(values.shape[0], -1)
    k = check_populations(values.shape[1], n_classes, f"decoder '{name}'")
    return values.reshape(values.shape[0], n_classes, k).sum(2)


def first_spike_step(spikes: torch.Tensor) -> torch.Tensor:
    """(T, B, n) trains -> (B,) the first step at which any neuron of the sample fired (0 if none)."""
    fired = (spikes > 0).any(2)  # (T, B)
    return fired.int().argmax(0)  # argmax gives the first maximum; all-zero -> 0


def _time_column(T: int, like: torch.Tensor) -> torch.Tensor:
    """Step indices 0..T-1 as a (T, 1, 1) column to weight (T, B, n) trains."""
    return torch.arange(T, device=like.device, dtype=like.dtype).view(T, 1, 1)


class PopulationDecoder(Decoder):
    """Decoders of class populations (SPAIC's decoders): ``decode(readout)`` gives a value per
    neuron (B, n); class scores are its sums over each class's population (``population_sums``)."""

    def decode(self, readout: Readout) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, n_readout, n_classes):
        check_populations(n_readout, n_classes, f"decoder '{self.name}'")

    def class_scores(self, readout, assignment, n_classes):
        return population_sums(self.decode(readout), n_classes, self.name)


@Decoder.register("spike_count")
class SpikeCountDecoder(PopulationDecoder):
    """Spike counts summed per class population; the most active class wins (SPAIC).

    SPAIC ``Spike_Counts``: c_i = sum_t s_i[t], score_k = sum_{i in k} c_i.
    """

    def decode(self, readout):
        return readout.values("counts")


@Decoder.register("spike_rate")
class SpikeRateDecoder(PopulationDecoder):
    """Firing rates in Hz summed per class population (SPAIC's Spike_Rate, in Hz).

    r_i = 1000 sum_t s_i[t] / (T dt), from the counts, ``Readout.steps`` (T) and ``dt``. SPAIC's ``Spike_Rate`` gives mean_t s[t] (spikes per step),
    1000 / dt times smaller: the same prediction as spike_count, in physical units."""

    def decode(self, readout):
        return readout.values("counts") * (1000.0 / (readout.n_steps * readout.dt))


@Decoder.register("first_spike")
class FirstSpikeDecoder(PopulationDecoder):
    """Time to first spike: the class with most neurons firing at the sample's first spike step.

    SPAIC ``First_Spike``: the sample's spike vector at its first spike step, s[t*] with t* = min{t : any_i s_i[t] > 0}. The class with the most neurons firing at t*
    wins, so the earliest class wins; a silent sample gives all zeros (class 0)."""

    needs = frozenset({"spikes"})

    def decode(self, readout):
        s = readout.values("spikes")
        t_first = first_spike_step(s)
        return s[t_first, torch.arange(s.shape[1], device=s.device)]  # (B, n)


@Decoder.register("final_voltage")
class FinalVoltageDecoder(PopulationDecoder):
    """Membrane potential at the last step, summed per class population (SPAIC).

    SPAIC ``Final_Step_Voltage``: v_i[T-1]; for non-spiking readouts.
    """

    needs = frozenset({"v"})

    def decode(self, readout):
        return readout.values("v")[-1]


@Decoder.register("voltage_sum")
class VoltageSumDecoder(PopulationDecoder):
    """Membrane potential summed over time and per class population (SPAIC).

    SPAIC ``Voltage_Sum``: sum_t v_i[t] (the equation of its name and numpy path; its torch path
    returns v[T-1] minus the batch mean instead).
    """

    needs = frozenset({"v"})

    def decode(self, readout):
        return readout.values("v").sum(0)


@Decoder.register("v_trajectory")
class VTrajectoryDecoder(PopulationDecoder):
    """Peak of each neuron's membrane trajectory, summed per class population.

    max_t v_i[t] (max-over-time readout). SPAIC's
    ``V_Trajectory`` hands the whole trajectory v (T, B, n) to a loss; to classify, the
    trajectory is read at its maximum."""

    needs = frozenset({"v"})

    def decode(self, readout):
        return readout.values("v").amax(0)


@Decoder.register("time_spike_count")
class TimeSpikeCountDecoder(PopulationDecoder):
    """Spike counts with exponentially less weight on later spikes (SPAIC).

    SPAIC ``TimeSpike_Counts``: c_i = sum_t s_i[t] w[t], w[t] = 0.1 exp(-t / (0.5 T)), t = 0 .. T-1 steps.

    A spike at the first step counts 0.1, one at the last about 0.1 e^-2."""

    needs = frozenset({"spikes"})

    def decode(self, readout):
        s = readout.values("spikes")
        T = s.shape[0]
        return (s * (0.1 * torch.exp(-_time_column(T, s) / (0.5 * T)))).sum(0)


@Decoder.register("time_softmax")
class TimeSoftmaxDecoder(PopulationDecoder):
    """Softmax over classes of spike scores decaying from the sample's first spike (SPAIC).

    SPAIC ``Time_Softmax`` with whole-step spike times:

        x_i = scale * sum_t s_i[t] exp(-(t - t*) dt / tau),   t* = the sample's first spike step
        p   = softmax_k(sum_{i in class k} x_i)

    SPAIC's constants: scale = 5, tau = 50 ms. ``class_scores`` returns p (rows sum to 1), a
    readout of early firing; spikes at t* count ``scale``, later ones less.
    """

    needs = frozenset({"spikes"})

    def __init__(self, scale: float = 5.0, tau: float = 50.0):
        if float(tau) <= 0:
            raise ConfigError(f"tau must be > 0 ms, got {tau}", key="tau")
        self.scale, self.tau = float(scale), float(tau)

    def decode(self, readout):
        s = readout.values("spikes")
        lag = _time_column(s.shape[0], s) - first_spike_step(s).to(s.dtype).view(1, -1, 1)  # t - t*
        return self.scale * (s * torch.exp(-lag * (readout.dt / self.tau))).sum(0)

    def class_scores(self, readout, assignment, n_classes):
        return torch.softmax(super().class_scores(readout, assignment, n_classes), dim=1)
