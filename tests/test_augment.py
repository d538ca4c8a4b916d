"""``data.augment_shift`` / ``augment_rotate`` / ``augment_scale``: random translation, rotation and
scaling of training images (snnrun/data/augment.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from snnrun.data.augment import RandomRotateScale, RandomShift, TrainingAugment
from snnrun.data import Dataset, Split
from snnrun.errors import ConfigError
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
                 "data.augment_shift=1", "data.augment_rotate=10", "data.augment_scale=0.1", "trainer.epochs=1", "trainer.batch_size=64", "device=cpu", "logger=plain",
                 f"hydra.run.dir={rd}"], cli_environ(), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((rd / "summary.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    resolved = (rd / "resolved_config.yaml").read_text()
    assert "augment_shift: 1" in resolved and "augment_rotate: 10" in resolved and "augment_scale: 0.1" in resolved


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_shifts_on_cuda_are_the_same_translations():
    x = torch.rand(16, 1, 10, 10) + 0.1
    out = RandomShift(2, (1, 10, 10), seed=0, device=torch.device("cuda"))(x.cuda(), 0).cpu()
    for i in range(len(x)):
        assert any(torch.equal(out[i], shifted(x[i], dy, dx)) for dy in range(-2, 3) for dx in range(-2, 3))


def centre_of_ink(img: torch.Tensor) -> tuple[float, float, float]:
    """(x, y, mass) of a (H, W) image, coordinates from the image centre (x right, y down)."""
    h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5 - h / 2, torch.arange(w) + 0.5 - w / 2, indexing="ij")
    m = img.sum()
    return float((img * xs).sum() / m), float((img * ys).sum() / m), float(m)


def test_rotation_and_scaling_move_the_ink_to_s_R_theta_q_and_scale_its_mass_by_s_squared():
    """Ink at q (from the centre) lands at s R(theta) q; bilinear reads keep the ink's mass times s^2."""
    x = torch.zeros(16, 1, 28, 28)
    x[:, 0, 12:16, 17:23] = 1.0  # a bar right of the centre, inside the image after any draw
    aug = RandomRotateScale(30, 0.2, (1, 28, 28), seed=5, device=torch.device("cpu"))
    out = aug(x, samples_seen=64)
    theta, s = aug.params(16, 64)
    assert theta.abs().max() <= math.radians(30) and ((s - 1).abs() <= 0.2).all()
    assert theta.std() > 0.1 and s.std() > 0.03  # each image its own draw
    qx, qy, m = centre_of_ink(x[0, 0])
    for i in range(16):
        ox, oy, mo = centre_of_ink(out[i, 0])
        c, n = math.cos(theta[i]), math.sin(theta[i])
        assert ox == pytest.approx(float(s[i]) * (c * qx - n * qy), abs=0.05)
        assert oy == pytest.approx(float(s[i]) * (n * qx + c * qy), abs=0.05)
        assert mo / m == pytest.approx(float(s[i]) ** 2, rel=0.02)


def test_a_quarter_turn_of_a_square_grid_is_exact():
    """theta = 90 degrees, s = 1 hits pixel centres: a pure transpose-and-flip, no blur."""
    aug = RandomRotateScale(90, 0.0, (1, 6, 6), seed=0, device=torch.device("cpu"))
    aug.params = lambda b, seen, device=None: (torch.full((b,), math.pi / 2), torch.ones(b))
    x = torch.rand(2, 1, 6, 6)
    out = aug(x, 0)
    # ink at (x, y) goes to (-y, x): clockwise on screen with y down
    assert torch.allclose(out, torch.rot90(x, k=-1, dims=(-2, -1)), atol=1e-5)


def test_rotation_draws_follow_seed_and_position_and_zero_is_off():
    x = torch.rand(8, 1, 10, 10)
    a = RandomRotateScale(15, 0.1, (1, 10, 10), seed=0, device=torch.device("cpu"))
    b = RandomRotateScale(15, 0.1, (1, 10, 10), seed=0, device=torch.device("cpu"))
    assert torch.equal(a(x, 40), b(x, 40))
    assert not torch.equal(a(x, 40), a(x, 48))
    assert RandomRotateScale(0, 0, (1, 10, 10), seed=0, device=torch.device("cpu"))(x, 0) is x
    flat = torch.rand(3, 100)  # stored flat: reshaped by the data's shape and back
    assert a(flat, 0).shape == flat.shape


def test_training_augment_shifts_then_turns():
    data = Dataset(Split(torch.zeros(1, 1, 12, 12), torch.zeros(1)), Split(torch.zeros(1, 1, 12, 12), torch.zeros(1)),
                   (1, 12, 12), 10, "t", augment_shift=1, augment_rotate=10.0, augment_scale=0.1)
    aug = TrainingAugment(data, seed=2, device=torch.device("cpu"))
    x = torch.rand(4, 1, 12, 12)
    assert bool(aug)
    assert torch.equal(aug(x, 8), aug.rotate(aug.shift(x, 8), 8))
    off = TrainingAugment(Dataset(data.train, data.test, (1, 12, 12), 10, "t"), seed=2, device=torch.device("cpu"))
    assert not off and off(x, 8) is x


def test_rotation_refuses_what_it_cannot_do():
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match="data.augment_rotate"):
        RandomRotateScale(-5, 0, (1, 8, 8), 0, cpu)
    with pytest.raises(ConfigError, match="data.augment_scale"):
        RandomRotateScale(0, 1.0, (1, 8, 8), 0, cpu)
    with pytest.raises(ConfigError, match=r"data.augment_rotate.*square.*\[1, 8, 6\]"):
        RandomRotateScale(10, 0, (1, 8, 6), 0, cpu)


def test_a_size_range_draws_factors_uniformly_between_its_ends():
    """data.augment_scale=[low, high] (torchvision's RandomAffine scale form): factors ~ U(low, high);
    a number f keeps its draws 1 + (2u - 1) f, the same as before the range form existed."""
    cpu = torch.device("cpu")
    _, s = RandomRotateScale(0, [0.85, 1.11], (1, 8, 8), 3, cpu).params(20000, 0)
    assert 0.85 <= float(s.min()) < 0.851 and 1.109 < float(s.max()) <= 1.11
    assert float(s.mean()) == pytest.approx(0.98, abs=0.003)  # (0.85 + 1.11) / 2
    theta, f = RandomRotateScale(10, 0.1, (1, 8, 8), 3, cpu).params(1000, 5)
    gen = torch.Generator().manual_seed((3 * 0x85EBCA77 + 5 + 0x5851F42D) % (2**63))
    u = torch.rand((2, 1000), generator=gen)
    assert torch.equal(f, 1 + (2 * u[1] - 1) * 0.1)
    assert not RandomRotateScale(0, [1.0, 1.0], (1, 8, 8), 0, cpu)  # [1, 1]: no scaling, off
    assert RandomRotateScale(0, [1.1, 1.2], (1, 8, 8), 0, cpu)  # always larger: on


@pytest.mark.parametrize("bad", [[1.2, 0.9], [0.0, 1.1], [0.9], [0.9, 1.0, 1.1], ["a", 1.0]])
def test_a_bad_size_range_names_the_key(bad):
    with pytest.raises(ConfigError, match=r"data.augment_scale.*\[low, high\]"):
        RandomRotateScale(0, bad, (1, 8, 8), 0, torch.device("cpu"))


def test_a_size_range_from_the_command_line_trains(tmp_path):
    rd = tmp_path / "run"
    r = run_cli(["train", "+model=csnn", "data=digits", "data.limit_train=128", "data.limit_test=64",
                 "data.augment_scale=[0.85,1.11]", "trainer.epochs=1", "trainer.batch_size=64", "device=cpu",
                 "logger=plain", f"hydra.run.dir={rd}"], cli_environ(), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "augment_scale:\n  - 0.85\n  - 1.11" in (rd / "resolved_config.yaml").read_text()
    bad = run_cli(["train", "+model=csnn", "data=digits", "data.augment_scale=[1.2,0.9]", "device=cpu",
                   f"hydra.run.dir={tmp_path / 'bad'}"], cli_environ(), tmp_path)
    assert bad.returncode != 0 and "data.augment_scale" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr and not (tmp_path / "bad").exists()
