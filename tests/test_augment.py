"""``data.augment_shift``: random translation of training images (snnrun/augment.py)."""

from __future__ import annotations

import json

import pytest
import torch

from snnrun.augment import RandomShift
from tests.conftest import cli_environ, run_cli


def shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img (C, H, W) moved down by dy and right by dx, zeros where nothing comes in."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_each_image_is_a_translation_within_the_range_with_zero_fill():
    torch.manual_seed(0)
    x = torch.rand(64, 2, 9, 7) + 0.1  # no zeros inside: every zero in the output is fill
    out = RandomShift(2, (2, 9, 7), seed=3, device=torch.device("cpu"))(x, samples_seen=0)
    assert out.shape == x.shape
    seen = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(out[i], shifted(x[i], dy, dx))]
        assert len(matches) == 1, i
        seen.add(matches[0])
    assert len(seen) > 15  # 25 offsets, 64 draws: (nearly) all of them occur


def test_the_draws_follow_seed_and_position_so_a_resumed_run_repeats_them():
    x = torch.rand(32, 1, 12, 12)
    a = RandomShift(1, (1, 12, 12), seed=0, device=torch.device("cpu"))
    b = RandomShift(1, (1, 12, 12), seed=0, device=torch.device("cpu"))
    assert torch.equal(a(x, 96), b(x, 96))      # a new process at the same point: the same shifts
    assert not torch.equal(a(x, 96), a(x, 128))  # the next batch: other shifts
    assert not torch.equal(a(x, 96), RandomShift(1, (1, 12, 12), seed=1, device=torch.device("cpu"))(x, 96))


def test_zero_is_off_and_flat_inputs_keep_their_shape():
    x = torch.rand(5, 64)
    assert RandomShift(0, (64,), seed=0, device=torch.device("cpu"))(x, 0) is x
    flat = torch.rand(5, 1 * 8 * 8)  # images stored flat: reshaped by the data's shape and back
    out = RandomShift(1, (1, 8, 8), seed=0, device=torch.device("cpu"))(flat, 0)
    assert out.shape == flat.shape


def test_a_conv_net_trains_with_shifted_images_and_the_run_records_it(tmp_path):
    rd = tmp_path / "run"
    r = run_cli(["train", "+model=csnn", "data=digits", "data.limit_train=256", "data.limit_test=128",
                 "data.augment_shift=1", "trainer.epochs=1", "trainer.batch_size=64", "device=cpu", "logger=plain",
                 f"hydra.run.dir={rd}"], cli_environ(), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((rd / "summary.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert "augment_shift: 1" in (rd / "resolved_config.yaml").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_shifts_on_cuda_are_the_same_translations():
    x = torch.rand(16, 1, 10, 10) + 0.1
    out = RandomShift(2, (1, 10, 10), seed=0, device=torch.device("cuda"))(x.cuda(), 0).cpu()
    for i in range(len(x)):
        assert any(torch.equal(out[i], shifted(x[i], dy, dx)) for dy in range(-2, 3) for dx in range(-2, 3))
