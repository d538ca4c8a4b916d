"""Input rates that follow the data: ``intensity: auto`` (issues 14 and 19).

The Diehl & Cook defaults were calibrated on MNIST: a white pixel fires at 128 Hz and a neuron's
input weights sum to ``norm = 0.1 n_inputs`` (mean weight 0.1). A dataset with more ink per
image (thicker strokes, a grey or noisy background) driven at the same 128 Hz sends every
excitatory neuron proportionally more input. ``auto`` keeps the expected total input rate of an
image equal to MNIST's::

    intensity = R_ref / ink,     ink   = mean over the training images of sum_i p_i   (p_i in [0, 1])
                                 R_ref = 128 Hz * 102.44 = 13,112 Hz   (MNIST's 60,000 training images)

With the weight norm from the input size (mean weight 0.1), the expected drive of a neuron with
unspecialised (uniform) weights, sum_i intensity p_i w_i = 0.1 intensity ink = 0.1 R_ref, is then
the same on every dataset; on the full MNIST training set ``auto`` is 128 Hz.
"""

from __future__ import annotations

import torch

from snnrun.errors import ConfigError

MNIST_INTENSITY = 128.0   # Hz of a white pixel (BindsNET's eth_mnist, Diehl & Cook's MNIST runs)
MNIST_MEAN_INK = 102.4378  # mean sum of pixel values of MNIST's 60,000 training images, pixels in [0, 1]
REFERENCE_RATE = MNIST_INTENSITY * MNIST_MEAN_INK  # Hz per image


def mean_ink(x: torch.Tensor) -> float:
    """Mean over samples of the sum of their values (x: (N, *shape) in [0, 1])."""
    return float(x.flatten(1).sum(1).double().mean()) if len(x) else 0.0


def auto_intensity(x: torch.Tensor) -> tuple[float, float]:
    """(intensity in Hz, the mean ink it was computed from) for training images ``x``."""
    ink = mean_ink(x)
    if not ink > 0:
        raise ConfigError("intensity: auto needs training images with some ink (their mean sum of pixel "
                          "values is 0); set a number of Hz instead", key="model.intensity")
    return REFERENCE_RATE / ink, ink


def resolve_intensity(encoder: dict, train_x: torch.Tensor) -> dict | None:
    """Replace ``intensity: auto`` in an encoder node by the rate from ``train_x``; returns
    {"intensity", "mean_ink"} when it did, else None (the node is changed in place)."""
    if str(encoder.get("intensity")) != "auto":
        return None
    intensity, ink = auto_intensity(train_x)
    encoder["intensity"] = intensity
    return {"intensity": intensity, "mean_ink": ink}
