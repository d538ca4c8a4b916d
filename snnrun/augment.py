"""Random translation of training images (``data.augment_shift: N``).

Each training image is moved by (dy, dx), each drawn uniformly from {-N, ..., N}, the uncovered
border filled with 0 (no ink), a fresh draw for every image of every epoch. Test images and the
validation split of a gradient learner are never shifted. It is the usual augmentation of conv
nets on MNIST (a few pixels of jitter: the digit's class does not depend on where it sits).

The draws are a function of the run's seed and the number of training images seen before the
batch, so a resumed run shifts the same images the same way as the run it continues.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnrun.errors import ConfigError


class RandomShift:
    """``shift(x, samples_seen)``: x (B, C, H, W) or (B, H, W) on any device, shifted per image."""

    def __init__(self, pixels: int, shape: tuple[int, ...], seed: int, device: torch.device):
        self.pixels = int(pixels)
        if self.pixels < 0:
            raise ConfigError(f"a number of pixels >= 0 (0: off), got {pixels}", key="data.augment_shift")
        if self.pixels and (len(shape) not in (2, 3) or min(shape[-2:]) <= 2 * self.pixels):
            raise ConfigError(f"shifts images (C, H, W) or (H, W) larger than twice the shift; these data are "
                              f"{list(shape)}", key="data.augment_shift")
        self.shape, self.seed, self.device = tuple(shape), int(seed), device
        self.gen = torch.Generator(device=device) if self.pixels else None

    def __bool__(self) -> bool:
        return self.pixels > 0

    def __call__(self, x: torch.Tensor, samples_seen: int) -> torch.Tensor:
        if not self.pixels:
            return x
        p, (h, w) = self.pixels, self.shape[-2:]
        # seeding a generator is host-side only (no device sync); the key mixes seed and position
        self.gen.manual_seed((self.seed * 0x9E3779B1 + samples_seen) % (2**63))
        b = x.shape[0]
        offsets = torch.randint(0, 2 * p + 1, (2, b, 1), device=x.device, generator=self.gen)
        img = x.reshape(b, -1, h, w)
        padded = F.pad(img, (p, p, p, p))
        rows = offsets[0] + torch.arange(h, device=x.device)    # (B, H): rows of the padded image
        cols = offsets[1] + torch.arange(w, device=x.device)    # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
        return out.permute(0, 3, 1, 2).reshape(x.shape)
