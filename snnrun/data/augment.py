"""Random translation, rotation and scaling of training images (``data.augment_shift``,
``data.augment_rotate``, ``data.augment_scale``).

Each training image is moved by (dy, dx), each drawn uniformly from {-N, ..., N}, the uncovered
border filled with 0 (no ink), a fresh draw for every image of every epoch. Test images and the
validation split of a gradient learner are never shifted. It is the usual augmentation of conv
nets on MNIST (a few pixels of jitter: the digit's class does not depend on where it sits).

Rotation and scaling (:class:`RandomRotateScale`) are the other two distortions LeCun et al.
(1998) and Simard et al. (2003) use on MNIST: each image is turned by an angle drawn from
U(-a, a) degrees and magnified by a factor drawn from U(1 - f, 1 + f) about its centre, read
bilinearly, the uncovered border 0. :class:`TrainingAugment` applies the shift, then the rotation
and scaling, whichever is on.

The draws are a function of the run's seed and the number of training images seen before the
batch, so a resumed run shifts the same images the same way as the run it continues.
"""

from __future__ import annotations

import math

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


class RandomRotateScale:
    """``rotate(x, samples_seen)``: each image turned by theta ~ U(-degrees, degrees) and
    magnified by s ~ U(1 - scale, 1 + scale) about its centre; ``scale`` may instead be a pair
    ``[low, high]`` of size factors, s ~ U(low, high) (torchvision's ``RandomAffine(scale=...)``
    form, e.g. Fang et al.'s [0.85, 1.11] for MNIST).

    The output pixel at p (coordinates from the image centre) reads the input at
    ``R(-theta) p / s``, so ink at q in the input lands at ``s R(theta) q``: in (x right, y down)
    image coordinates a positive theta turns the digit clockwise on screen. Bilinear reads,
    0 outside the image. ``params(b, samples_seen)`` gives the draws (radians, factors).
    """

    def __init__(self, degrees: float, scale, shape: tuple[int, ...], seed: int, device: torch.device):
        self.degrees = float(degrees)
        if not 0.0 <= self.degrees <= 180.0:
            raise ConfigError(f"a largest angle in degrees from 0 (off) to 180, got {degrees}", key="data.augment_rotate")
        # s = centre + (2u - 1) half: a number f is centre 1, half f exactly (the draws of 1 +/- f)
        self.centre, self.half = size_range(scale)
        if self and (len(shape) not in (2, 3) or shape[-1] != shape[-2]):
            key = "data.augment_rotate" if self.degrees else "data.augment_scale"
            raise ConfigError(f"turns and scales square images (C, H, H) or (H, H); these data are {list(shape)}", key=key)
        self.shape, self.seed = tuple(shape), int(seed)
        self.gen = torch.Generator(device=device) if self else None

    def __bool__(self) -> bool:
        return self.degrees > 0 or self.half > 0 or self.centre != 1.0

    def params(self, b: int, samples_seen: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(theta, s) of the next ``b`` images: angles in radians and size factors."""
        # another key than RandomShift's, so that the two draws are independent
        self.gen.manual_seed((self.seed * 0x85EBCA77 + samples_seen + 0x5851F42D) % (2**63))
        u = torch.rand((2, b), device=device or self.gen.device, generator=self.gen)
        theta = (2 * u[0] - 1) * math.radians(self.degrees)
        return theta, self.centre + (2 * u[1] - 1) * self.half

    def __call__(self, x: torch.Tensor, samples_seen: int) -> torch.Tensor:
        if not self:
            return x
        b, (h, w) = x.shape[0], self.shape[-2:]
        theta, s = self.params(b, samples_seen, x.device)
        cos, sin = torch.cos(theta) / s, torch.sin(theta) / s
        zero = torch.zeros_like(cos)
        # affine_grid maps each output position (normalised to [-1, 1]) to where it reads the input
        inverse = torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)
        img = x.reshape(b, -1, h, w)
        grid = F.affine_grid(inverse.to(torch.float32), list(img.shape), align_corners=False)
        out = F.grid_sample(img.to(torch.float32), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.to(x.dtype).reshape(x.shape)


def size_range(scale) -> tuple[float, float]:
    """``data.augment_scale`` as (centre, half width) of the size factor's uniform range: a number
    f is 1 +/- f (0 <= f < 1), a pair [low, high] is that range (0 < low <= high)."""
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        if not 0.0 <= scale < 1.0:
            raise ConfigError(f"a largest relative change of size from 0 (off) up to, not including, 1 (0.1: "
                              f"0.9x to 1.1x), or [low, high] size factors; got {scale}", key="data.augment_scale")
        return 1.0, float(scale)
    pair = list(scale) if isinstance(scale, (list, tuple)) else None
    if (pair is None or len(pair) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
            or not 0.0 < pair[0] <= pair[1]):
        raise ConfigError(f"[low, high] size factors with 0 < low <= high (e.g. [0.85, 1.11]), or one relative "
                          f"change f for 1 - f to 1 + f; got {scale!r}", key="data.augment_scale")
    low, high = float(pair[0]), float(pair[1])
    return (low + high) / 2, (high - low) / 2


class TrainingAugment:
    """The training-image distortions a dataset asks for: shift, then rotation and scaling."""

    def __init__(self, data, seed: int, device: torch.device):
        self.shift = RandomShift(data.augment_shift, data.shape, seed, device)
        self.rotate = RandomRotateScale(data.augment_rotate, data.augment_scale, data.shape, seed, device)

    def __bool__(self) -> bool:
        return bool(self.shift) or bool(self.rotate)

    def __call__(self, x: torch.Tensor, samples_seen: int) -> torch.Tensor:
        return self.rotate(self.shift(x, samples_seen), samples_seen)
