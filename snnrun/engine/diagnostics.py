"""What competitive local learning does, batch by batch (issue 19): logged with every metrics window.

For a model that learns by local rules and decodes by label assignment (Diehl & Cook), per window
of ``trainer.assign_every`` samples:

- ``winners``: how many distinct neurons won a sample (a sample's winner is its readout neuron
  with the most spikes; silent samples have none), and ``top_win_share``, the most frequent
  winner's share of the window's samples: a few neurons winning everything means the rest learn
  nothing;
- ``learning_per_batch``: mean number of readout neurons that fired in a batch. Under ``owner``
  each of them learns from exactly one sample, so at most this many of the batch's samples are
  learned from (at batch 1: 0 or 1);
- ``samples_learned`` (``owner`` rules): share of the samples that own a neuron, i.e. that the rule
  learned from (sequential presentation, batch 1: every sample that fires a neuron);
- ``silent``: share of samples without a readout spike;
- ``theta``: mean and max adaptive threshold of each group that has one (mV);
- ``weights``: per learned dense connection, the mean L2 norm of a neuron's input weights (the
  column sums are fixed by ``norm``: a larger L2 norm means sharper, more concentrated features,
  blurred ones have a smaller one) and ``change``, ||W - W_window_start|| / ||W_window_start||.

Per-batch quantities are accumulated on the device and handed to the loop's deferred metrics
line as device tensors: no host sync per batch or per window. ``finish()`` returns the per-neuron win counts of the run
(``diagnostics.json``); :func:`snnrun.run.plots.save_diagnostics_png` draws ``diagnostics.png``.
"""

from __future__ import annotations

from typing import Any

import torch


class LearningDiagnostics:
    def __init__(self, network, readout: str, device: torch.device):
        self.network = network
        n = network.groups[readout].n
        self.thetas = {name: g for name, g in network.groups.items() if isinstance(getattr(g, "theta", None), torch.Tensor)}
        self.weights = {rule.connection.source + "_" + rule.connection.target: rule.connection
                        for rule in network.learners.values()
                        if isinstance(getattr(rule.connection, "w", None), torch.Tensor) and rule.connection.w.dim() == 2}
        self.owner_rules = [r for r in network.learners.values() if getattr(r, "reduction", None) == "owner"][:1]
        self.total_wins = torch.zeros(n, dtype=torch.long, device=device)
        self._start_window(device, n)

    def _start_window(self, device=None, n=None) -> None:
        device = device or self.total_wins.device
        n = n or self.total_wins.numel()
        self.wins = torch.zeros(n, dtype=torch.long, device=device)
        self.active = torch.zeros((), dtype=torch.long, device=device)
        self.silent = torch.zeros((), dtype=torch.long, device=device)
        self.owning = torch.zeros((), dtype=torch.long, device=device)
        self.batches = self.samples = 0
        self.w0 = {k: c.w.detach().clone() for k, c in self.weights.items()}

    @torch.no_grad()
    def observe(self, counts: torch.Tensor) -> None:
        """One training batch's readout counts (B, n)."""
        counts = counts.flatten(1)
        spiking = counts.sum(1) > 0
        self.wins.index_add_(0, counts.argmax(1), spiking.long())
        self.active += (counts.sum(0) > 0).sum()
        self.silent += (~spiking).sum()
        for rule in self.owner_rules:  # samples that own a neuron: those an owner rule learned from
            learned = rule.learned_from(counts.shape[0])
            if learned is None:  # batch 1 on the CPU runs as 'sum' (stdp.py)
                self.owning += spiking.sum()
            else:
                self.owning += (learned > 0).sum().to(self.owning.device)
        self.batches += 1
        self.samples += counts.shape[0]

    @torch.no_grad()
    def window(self) -> dict[str, Any]:
        """The window's raw figures, as device tensors (read later without a sync: see
        :meth:`summary`); starts the next window."""
        if not self.samples:
            return {}
        raw: dict[str, Any] = {"winners": (self.wins > 0).sum(), "top_wins": self.wins.max(),
                               "active": self.active, "silent": self.silent,
                               "samples": self.samples, "batches": self.batches}
        if self.owner_rules:
            raw["owning"] = self.owning
        if self.thetas:
            raw["theta"] = {k: {"mean": g.theta.float().mean(), "max": g.theta.max()} for k, g in self.thetas.items()}
        if self.weights:
            raw["weights"] = {}
            for k, c in self.weights.items():
                w, base = c.w.detach().float(), self.w0[k].float()
                raw["weights"][k] = {"l2_mean": w.norm(dim=0).mean(),
                                     "change": (w - base).norm() / base.norm().clamp_min(1e-12)}
        self.total_wins += self.wins
        self._start_window()  # new tensors: the ones in ``raw`` keep this window's values
        return raw

    @staticmethod
    def summary(raw: dict[str, Any]) -> dict[str, Any]:
        """The metrics-line figures (see the module docstring) from :meth:`window`'s values."""
        if not raw:
            return {}
        samples, batches = max(raw["samples"], 1), max(raw["batches"], 1)
        out: dict[str, Any] = {
            "winners": int(raw["winners"]),
            "top_win_share": round(int(raw["top_wins"]) / samples, 4),
            "learning_per_batch": round(float(raw["active"]) / batches, 2),
            "silent": round(float(raw["silent"]) / samples, 4),
        }
        if "owning" in raw:
            out["samples_learned"] = round(float(raw["owning"]) / samples, 4)
        if "theta" in raw:
            out["theta"] = {k: {"mean": round(float(v["mean"]), 4), "max": round(float(v["max"]), 4)}
                            for k, v in raw["theta"].items()}
        if "weights" in raw:
            out["weights"] = {k: {"l2_mean": round(float(v["l2_mean"]), 4), "change": round(float(v["change"]), 5)}
                              for k, v in raw["weights"].items()}
        return out

    def finish(self) -> dict[str, Any]:
        wins = self.total_wins.cpu()
        return {"wins_per_neuron": wins.tolist(), "neurons_never_winning": int((wins == 0).sum())}
