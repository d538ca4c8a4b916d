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

Per-batch quantities are accumulated on the device (no host sync per batch) and read at the
window, where the loop syncs anyway. ``finish()`` returns the per-neuron win counts of the run
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
            b = counts.shape[0]
            if getattr(rule, "owner", None) is None:  # batch 1 on the CPU runs as 'sum' (stdp.py)
                self.owning += spiking.sum()
                continue
            owned = torch.zeros(b + 1, dtype=torch.long, device=counts.device)
            owned.scatter_(0, rule.owner.clamp_min(-1) + 1, 1)
            self.owning += owned[1:].sum()
        self.batches += 1
        self.samples += counts.shape[0]

    @torch.no_grad()
    def window(self) -> dict[str, Any]:
        """The window's figures (see the module docstring); starts the next window."""
        if not self.samples:
            return {}
        out: dict[str, Any] = {
            "winners": int((self.wins > 0).sum()),
            "top_win_share": round(int(self.wins.max()) / max(self.samples, 1), 4),
            "learning_per_batch": round(float(self.active) / self.batches, 2),
            "silent": round(float(self.silent) / self.samples, 4),
        }
        if self.owner_rules:
            out["samples_learned"] = round(float(self.owning) / self.samples, 4)
        if self.thetas:
            out["theta"] = {k: {"mean": round(float(g.theta.mean()), 4), "max": round(float(g.theta.max()), 4)}
                            for k, g in self.thetas.items()}
        if self.weights:
            out["weights"] = {}
            for k, c in self.weights.items():
                w = c.w.detach().float()
                base = self.w0[k].float()
                out["weights"][k] = {"l2_mean": round(float(w.norm(dim=0).mean()), 4),
                                     "change": round(float((w - base).norm() / base.norm().clamp_min(1e-12)), 5)}
        self.total_wins += self.wins
        self._start_window()
        return out

    def finish(self) -> dict[str, Any]:
        wins = self.total_wins.cpu()
        return {"wins_per_neuron": wins.tolist(), "neurons_never_winning": int((wins == 0).sum())}
