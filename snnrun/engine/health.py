"""Run health: stop on non-finite numbers, warn about silent networks.

A run whose input, loss or state (weights, adaptive thresholds, batch-norm statistics, optimiser
moments) turned NaN/inf learns nothing from then on but would still finish, test at chance and
exit 0. :class:`Health` checks

* the input once, before training: the data splits and the encoder's numeric parameters (a NaN
  ``model.intensity`` makes every Poisson probability NaN, i.e. a silent input);
* the gradient loss through the epoch sums the loop already keeps on the device (a non-finite
  batch loss makes the sum non-finite: no extra host sync per batch);
* the network's and learners' state before every checkpoint is written (so ``checkpoint.pt``
  stays the last good one), at epoch ends, and at metrics windows when there are no periodic
  checkpoints (``trainer.checkpoint_every=0``). Before checkpoints and at windows the flags are
  computed on the device and read a few batches later
  (:class:`snnrun.engine.deferred.HostQueue`), so the check costs no host sync.

A finding raises :class:`~snnrun.errors.TrainingDiverged` (the CLI: one message, exit code 2)
naming the tensor and the likely cause. Silent readouts (samples without a single readout spike)
are counted on the device per training batch and read at epoch ends; :func:`silence_warnings`
words the warnings summary.json lists.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch

from snnrun.errors import TrainingDiverged

SILENT_FRACTION = 0.5  # warn when more than this share of samples gave no readout spike


def named_tensors(obj: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    """The floating-point tensors in nested dicts/lists (a state dict), with dotted names."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from named_tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from named_tensors(v, f"{prefix}.{i}" if prefix else str(i))


def nonfinite_from_flags(names: list[str], flags: torch.Tensor | None, strategy=None) -> list[str]:
    """The names whose finite-flag is false (``flags`` read on the host: a sync if on the device)."""
    if flags is None:
        return []
    ok = bool(flags.all())
    if strategy is not None:  # data-parallel: all ranks stop together
        ok = strategy.sum_(0.0 if ok else 1.0)[0] == 0
    if ok:
        return []
    bad = [n for n, f in zip(names, flags.tolist()) if not f]
    return bad or ["(another rank's state)"]


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


class Health:
    """Non-finite checks and silent-readout counts of one training run."""

    def __init__(self, exp, strategy=None):
        self.exp, self.strategy = exp, strategy
        self.silent = torch.zeros((), dtype=torch.long, device=exp.device)  # this epoch, on the device
        self.seen = 0
        self.last_epoch: tuple[int, int] | None = None  # (silent, samples) of the last epoch trained
        self.warned_train = False

    # -- likely causes ------------------------------------------------------------------
    def _learner_keys(self) -> dict[str, str]:
        names = list(self.exp.learners)
        return {n: "model.learner" if names == ["learner"] else f"model.learner.{n}" for n in names}

    def lr_hint(self) -> tuple[str, str | None]:
        """(the learning-rate cause in words, its config key) for this model's learners."""
        exp = self.exp
        keys = self._learner_keys()
        grad = exp.gradient
        if grad is not None:
            name = next(n for n, l in exp.learners.items() if l is grad)
            key = f"{keys[name]}.optimizer.lr"
            return (f"a too high learning rate ({key}={_fmt(grad.lr)}; lower it, or clip gradients)", key)
        if keys:
            where = ", ".join(keys.values())
            return (f"too high learning-rule rates ({where}: nu / lr / eta), or weights or thresholds "
                    "growing without bound (weight bounds, normalisation, theta_plus)", None)
        return "neuron parameters that make the dynamics unstable (e.g. a too large dt or time constant)", None

    def input_hint(self) -> str:
        scale = (("model.intensity" if "intensity" in self.exp.cfg["model"] else "model.encoder.intensity")
                 if hasattr(self.exp.encoder, "intensity")
                 else "the encoder's rate or gain, or the data's range")
        return f"a too large input scale ({scale})"

    # -- checks -------------------------------------------------------------------------
    def check_input(self) -> None:
        """Before training: the encoder's numeric parameters and the data splits are finite."""
        exp = self.exp
        for attr, value in vars(exp.encoder).items():
            if isinstance(value, float) and not math.isfinite(value):
                key = f"model.{attr}" if attr in exp.cfg["model"] else f"model.encoder.{attr}"
                raise TrainingDiverged(
                    f"non-finite input: the encoder's {attr} is {value} ({key}), so the encoded input is not a "
                    f"number (a NaN rate gives a silent input); set a finite input scale", key=key)
        for name, split in (("train", exp.train), ("val", exp.val), ("test", exp.data.test)):
            x = split.x
            if len(x) and x.is_floating_point() and not bool(torch.isfinite(x).all()):
                n = int((~torch.isfinite(x.reshape(len(x), -1))).any(1).sum())
                raise TrainingDiverged(f"non-finite input: {n} sample(s) of the {name} split of "
                                       f"{exp.data.name} hold NaN or inf values; clean the data", key="data")

    def check_loss(self, total: float, what: str = "loss") -> None:
        if not math.isfinite(total):
            hint, key = self.lr_hint()
            raise TrainingDiverged(f"non-finite {what} ({total}). Likely cause: {hint}; or "
                                   f"{self.input_hint()}", key=key)

    def check_state(self, where: str) -> None:
        """The network's state and the learners' state (optimiser moments, traces) are finite."""
        names, flags = self.state_flags()
        self.check_flags(where, names, flags)

    def state_flags(self) -> tuple[list[str], torch.Tensor | None]:
        """The names of the state's floating-point tensors and, on their device, whether each is
        finite: queued without a host sync, read by :meth:`check_flags` (now or a batch later)."""
        exp = self.exp
        named = list(named_tensors(exp.network.state_dict(), ""))
        for n, learner in exp.learners.items():
            named += list(named_tensors(learner.state_dict(), f"learners.{n}"))
        if not named:
            return [], None
        return [n for n, _ in named], torch.stack([torch.isfinite(t).all().to(named[0][1].device) for _, t in named])

    def check_flags(self, where: str, names: list[str], flags: torch.Tensor | None) -> None:
        """Raise :class:`TrainingDiverged` naming the tensors whose flag (:meth:`state_flags`) is
        false; in a data-parallel run every rank agrees (a collective: all ranks call it together)."""
        bad = nonfinite_from_flags(names, flags, self.strategy)
        if bad:
            hint, key = self.lr_hint()
            shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
            verb = "hold" if len(bad) > 1 else "holds"
            raise TrainingDiverged(f"non-finite state {where}: {shown} {verb} NaN/inf. Likely cause: {hint}; "
                                   f"or {self.input_hint()}", key=key)

    # -- silent readouts ----------------------------------------------------------------
    def count_silent(self, counts: torch.Tensor) -> None:
        """Per training batch, on the device: samples without a readout spike."""
        self.silent += (counts.reshape(counts.shape[0], -1).sum(1) == 0).sum()
        self.seen += counts.shape[0]

    def end_epoch(self) -> str | None:
        """Read this epoch's silent count (one sync); a warning the first time most were silent."""
        silent, seen = int(self.silent), self.seen
        self.silent.zero_()
        self.seen = 0
        if seen:
            self.last_epoch = (silent, seen)
        msg = silence_warning("training", *self.last_epoch) if self.last_epoch else None
        if msg and not self.warned_train:
            self.warned_train = True
            return msg
        return None

    def warnings(self, results: dict[str, Any]) -> list[str]:
        out = []
        if self.last_epoch is not None:
            msg = silence_warning("training", *self.last_epoch, last_epoch=True)
            if msg:
                out.append(msg)
        msg = silence_warning("test", results.get("silent_test_samples", 0), results.get("n_test", 0))
        if msg:
            out.append(msg)
        return out


def silence_warning(split: str, silent: int, n: int, last_epoch: bool = False) -> str | None:
    """The warning for ``silent`` of ``n`` samples without a readout spike, or None."""
    if n <= 0 or silent / n <= SILENT_FRACTION:
        return None
    when = " in the last training epoch" if last_epoch else ""
    return (f"{silent}/{n} {split} samples ({100 * silent / n:.0f}%){when} gave no readout spike, so the "
            "decoders guess. Likely causes: the input rate is too low (model.intensity / encoder rate), the "
            "thresholds are too high (neuron thresh / theta), or the weights into the readout are too weak")
