"""Decoders turn a readout group's activity into class predictions.

The label-assignment family (Diehl & Cook 2015) needs no trained readout weights: each neuron
is assigned the class for which it fired most (per training sample of that class); a test
sample is then classified by the spikes of the neurons assigned to each class.
"""

from __future__ import annotations

import torch

from snnrun.registry import Registry


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


class Decoder:
    """Base class: ``predict(counts (B, n), assignment) -> labels (B,)``."""

    registry: Registry = Registry("decoder")

    @classmethod
    def register(cls, name: str, *aliases: str):
        return cls.registry.register(name, *aliases)

    @classmethod
    def build(cls, node, key: str | None = None, **runtime) -> "Decoder":
        return cls.registry.build(node, key=key, **runtime)

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
