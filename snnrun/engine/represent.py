"""Present a quiet sample again at a higher input rate (Diehl & Cook 2015).

Diehl & Cook (2015, Front. Comput. Neurosci. 9:99, section 2.3 "Input encoding"): "If the
excitatory neurons in the second layer fire less than five spikes within 350 ms, the maximum
input firing rate is increased by 32 Hz and the example is presented again for 350 ms." Here,
in evaluation (label assignment, validation, test), and also while learning with
``trainer.represent_learning=true``, a sample whose readout fired fewer than
``trainer.represent_below`` spikes is presented again with the Poisson rate of a pixel of value
1 raised from I to I + k * ``trainer.represent_add_hz`` on try k, up to ``trainer.represent_tries``
tries; its counts are those of the first try that reaches the bound (else of the last try).

Why it matters: with adaptive thresholds, data with less contrast than MNIST (a grey background)
drives the learned features weakly, and a sample that fires nothing is a guess for every decoder.
Why learning is opt-in: every spike of a re-presentation raises the adaptive thresholds
(theta_plus each), so thresholds climb faster, more samples turn quiet and are presented again;
on low-contrast MNIST at 400 neurons mean theta reached 227-231 mV after 27,000 images (95 mV
without) and the running accuracy fell (README, issue 19).

Each try presents the batch at its own shape (reusing its captured CUDA graph): the quiet rows
scaled by (I + k * add_hz) / I (the Poisson encoder's rate is pixel x I), the others blank; only
the quiet rows take the new counts. One host sync per try decides whether a batch needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from snnrun.errors import ConfigError


@dataclass(frozen=True)
class Represent:
    below: int       # fewer readout spikes than this: present again (Diehl & Cook: 5)
    add_hz: float    # rate added per try (Diehl & Cook: 32 Hz)
    tries: int       # at most this many presentations more
    intensity: float  # the encoder's rate of a pixel of value 1 (Hz)

    @classmethod
    def from_config(cls, trainer: Any, encoder: Any) -> "Represent | None":
        """None when ``trainer.represent_below`` is 0 (the default); a ConfigError naming the key
        for a bad value or an encoder without an input rate."""
        below = trainer.get("represent_below", 0) or 0
        add_hz, tries = trainer.get("represent_add_hz", 32.0), trainer.get("represent_tries", 3)
        for key, v, low in (("represent_below", below, 0), ("represent_add_hz", add_hz, 1e-9),
                            ("represent_tries", tries, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < low or (key != "represent_add_hz" and v != int(v)):
                what = "a rate in Hz > 0" if key == "represent_add_hz" else f"a whole number >= {low}"
                raise ConfigError(f"expected {what}, got {v!r}", key=f"trainer.{key}")
        if not below:
            return None
        intensity = getattr(encoder, "intensity", None)
        if not isinstance(intensity, (int, float)) or intensity <= 0:
            raise ConfigError(f"presenting quiet samples again raises the input rate: it needs a rate encoder with "
                              f"an intensity > 0 (poisson), got the {type(encoder).__name__}; set "
                              f"trainer.represent_below=0", key="trainer.represent_below")
        return cls(int(below), float(add_hz), int(tries), float(intensity))

    @torch.no_grad()
    def __call__(self, present, x: torch.Tensor, readout, before=None):
        """``readout`` of ``present(x)``, with quiet rows replaced by their presentation at a higher
        rate. The other rows are presented as blank images (no input spikes: while learning, no
        weight or threshold change either), so a try teaches only the samples it presents again.
        ``before()`` runs before each try (the learners' per-presentation start)."""
        counts = readout.counts
        spikes = readout.spikes
        view = (-1,) + (1,) * (x.dim() - 1)
        for k in range(1, self.tries + 1):
            quiet = counts.sum(1) < self.below
            if not bool(quiet.any()):  # one host sync per try
                break
            if before is not None:
                before()
            scale = quiet.to(x.dtype) * ((self.intensity + k * self.add_hz) / self.intensity)
            again = present(x * scale.view(view))
            counts = torch.where(quiet[:, None], again.counts, counts)
            if spikes is not None and again.spikes is not None:
                spikes = torch.where(quiet[None, :, None], again.spikes, spikes)
        return replace(readout, counts=counts, spikes=spikes)
