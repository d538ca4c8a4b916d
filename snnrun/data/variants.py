"""MNIST-derived variants whose statistics differ from MNIST's (a test bed for issue 19).

Each variant is a deterministic transformation of the images, ``x`` float in [0, 1] of shape
(N, 1, H, W); random ones draw from a generator seeded by ``seed`` (the dataset's
``variant_seed``, plus 1 for the test split), so the same seed gives the same images on every
machine. ``strength`` is the variant's one knob (``None``: its default, ``DEFAULT_STRENGTH``):

- ``noise``:        x' = max(x, u),            u ~ U(0, strength) per pixel (background noise)
- ``thick``:        x' = max over a (2r+1)^2 window of x, r = strength pixels (dilated strokes)
- ``low_contrast``: x' = strength/2 + (1 - strength) x   (grey background, contrast 1 - strength)
- ``texture``:      x' = max(x, strength g),   g = (1 + sin(2 pi f (u cos a + v sin a) + phi)) / 2, a
                    grating per image, f ~ U(0.1, 0.25) cycles/pixel, a ~ U(0, pi), phi ~ U(0, 2 pi)
- ``none``:         x' = x

Mean ink per image (sum of pixel values) on the 60,000 training images at the default
strengths: MNIST 102.4, noise 266, thick 204, low_contrast 247, texture 266.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snnrun.errors import ConfigError

DEFAULT_STRENGTH = {"none": 0.0, "noise": 0.5, "thick": 1, "low_contrast": 0.5, "texture": 0.5}
VARIANTS = tuple(DEFAULT_STRENGTH)


def check_variant(variant: str, strength) -> float:
    """The variant's strength (its default for None); ConfigError naming the key otherwise."""
    if variant not in DEFAULT_STRENGTH:
        from snnrun.registry import did_you_mean

        raise ConfigError(f"unknown variant '{variant}'.{did_you_mean(str(variant), VARIANTS)} "
                          f"Allowed: {', '.join(VARIANTS)}", key="variant")
    s = DEFAULT_STRENGTH[variant] if strength is None else strength
    try:
        s = float(s)
    except (TypeError, ValueError):
        raise ConfigError(f"must be a number, got {strength!r}", key="strength") from None
    if variant == "thick":
        if s != int(s) or not 0 <= s <= 5:
            raise ConfigError(f"thick: the dilation radius in whole pixels 0..5, got {strength}", key="strength")
    elif not 0.0 <= s <= 1.0:
        raise ConfigError(f"{variant}: strength in [0, 1], got {strength}", key="strength")
    return s


def make_variant(x: torch.Tensor, variant: str, strength=None, seed: int = 0) -> torch.Tensor:
    """The ``variant`` of images ``x`` (N, C, H, W) in [0, 1] (see the module docstring)."""
    s = check_variant(variant, strength)
    g = torch.Generator().manual_seed(int(seed))
    if variant == "none" or s == 0:
        return x
    if variant == "noise":
        return torch.maximum(x, s * torch.rand(x.shape, generator=g))
    if variant == "thick":
        r = int(s)
        return F.max_pool2d(x, kernel_size=2 * r + 1, stride=1, padding=r)
    if variant == "low_contrast":
        return s / 2 + (1 - s) * x
    # texture: one random grating per image
    n, _, h, w = x.shape
    f = 0.1 + 0.15 * torch.rand(n, generator=g)
    a = math.pi * torch.rand(n, generator=g)
    phi = 2 * math.pi * torch.rand(n, generator=g)
    v, u = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    proj = u[None] * torch.cos(a)[:, None, None] + v[None] * torch.sin(a)[:, None, None]
    grating = 0.5 * (1 + torch.sin(2 * math.pi * f[:, None, None] * proj + phi[:, None, None]))
    return torch.maximum(x, s * grating.unsqueeze(1).to(x.dtype))
