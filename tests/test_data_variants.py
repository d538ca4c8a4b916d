"""data=mnist_variant (snnrun/data/variants.py): each variant's formula on known images, determinism
by seed, bad options; and intensity: auto (snnrun/engine/input_rates.py)."""

import math
from pathlib import Path

import pytest
import torch

from snnrun.data.variants import VARIANTS, make_variant
from snnrun.engine.input_rates import REFERENCE_RATE, auto_intensity, resolve_intensity
from snnrun.errors import ConfigError

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").is_file(),
                                 reason=f"the full MNIST set is not at {MNIST} (../shared/data/mnist)")


def dot_images(n=4):
    """n blank 9x9 images with one white pixel at (4, 4) and a grey one at (0, 8)."""
    x = torch.zeros(n, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    x[:, 0, 0, 8] = 0.5
    return x


def test_noise_lifts_each_pixel_to_a_uniform_background_at_most_strength():
    x = torch.zeros(200, 1, 28, 28)
    y = make_variant(x, "noise", 0.4, seed=1)
    assert y.min() >= 0 and y.max() <= 0.4
    assert y.mean().item() == pytest.approx(0.2, abs=0.005)         # U(0, 0.4) has mean 0.2
    assert y.var().item() == pytest.approx(0.4 ** 2 / 12, rel=0.05)  # and variance s^2 / 12
    ink = dot_images()
    assert torch.equal(make_variant(ink, "noise", 0.4, seed=1)[:, 0, 4, 4], torch.ones(4))  # max(x, u)


def test_thick_is_a_grey_dilation_by_the_radius():
    y = make_variant(dot_images(1), "thick", 1)[0, 0]
    expected = torch.zeros(9, 9)
    expected[3:6, 3:6] = 1.0       # the white pixel grows to 3x3
    expected[0:2, 7:9] = 0.5       # the grey corner pixel to its 2x2 inside the image
    assert torch.equal(y, expected)
    assert make_variant(dot_images(1), "thick", 2)[0, 0, 2:7, 2:7].eq(1).all()


def test_low_contrast_is_the_affine_map():
    x = torch.rand(3, 1, 5, 5)
    s = 0.6
    assert torch.allclose(make_variant(x, "low_contrast", s), s / 2 + (1 - s) * x)


def test_texture_is_a_grating_per_image_under_the_digit():
    x = dot_images(8)
    y = make_variant(x, "texture", 0.5, seed=3)
    assert torch.all(y >= x) and y.max() <= 1.0 and y[:, 0, 4, 4].eq(1).all()
    bg = y[:, 0, 5:, :4]  # away from the dot: 0.5 (1 + sin(...)) / 2 in [0, 0.5], a different grating per image
    assert bg.min() >= 0 and bg.max() <= 0.5 + 1e-6 and bg.max() > 0.3
    assert not torch.allclose(bg[0], bg[1])
    # a grating: along its own direction it is periodic; the mean of (1 + sin) / 2 * s over many
    # periods and phases is s / 2
    big = make_variant(torch.zeros(500, 1, 28, 28), "texture", 0.5, seed=0)
    assert big.mean().item() == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("variant", ["noise", "texture"])
def test_random_variants_are_fixed_by_the_seed(variant):
    x = dot_images()
    assert torch.equal(make_variant(x, variant, None, seed=5), make_variant(x, variant, None, seed=5))
    assert not torch.equal(make_variant(x, variant, None, seed=5), make_variant(x, variant, None, seed=6))


@pytest.mark.parametrize("variant, strength, key", [("nois", None, "variant"), ("noise", 1.5, "strength"),
                                                    ("thick", 1.5, "strength"), ("texture", "x", "strength")])
def test_bad_variant_options_name_the_key(variant, strength, key):
    with pytest.raises(ConfigError) as e:
        make_variant(dot_images(), variant, strength)
    assert e.value.key == key
    if key == "variant":
        assert "noise" in e.value.message and all(v in e.value.message for v in VARIANTS)


def test_auto_intensity_gives_every_dataset_mnists_total_input_rate():
    x = dot_images(10)  # ink per image: 1.5
    intensity, ink = auto_intensity(x)
    assert ink == pytest.approx(1.5)
    assert intensity == pytest.approx(128.0 * 102.4378 / 1.5)
    # the expected drive of a neuron with uniform weights w = 0.1 (norm 0.1 n_inputs):
    # sum_i intensity p_i 0.1 = 0.1 intensity ink = 0.1 R_ref, whatever the dataset
    for imgs in (dot_images(3), make_variant(dot_images(3), "thick", 1), torch.full((2, 1, 28, 28), 0.3)):
        rate, ink = auto_intensity(imgs)
        assert 0.1 * rate * ink == pytest.approx(0.1 * REFERENCE_RATE)
    node = {"type": "poisson", "intensity": "auto"}
    assert resolve_intensity(node, x)["intensity"] == pytest.approx(intensity)
    assert node["intensity"] == pytest.approx(intensity)
    assert resolve_intensity({"intensity": 64.0}, x) is None
    with pytest.raises(ConfigError, match="ink") as e:
        auto_intensity(torch.zeros(2, 1, 4, 4))
    assert e.value.key == "model.intensity"


@needs_mnist
def test_auto_intensity_is_128_hz_on_the_mnist_training_set():
    from snnrun.data.images import MNISTSource

    train, _, _ = MNISTSource(root=str(MNIST), download=False).load_splits()
    assert auto_intensity(train.x)[0] == pytest.approx(128.0, abs=1e-3)


@needs_mnist
def test_mnist_variant_dataset_loads_the_transformed_mnist(compose_cfg):
    from snnrun.data import build_dataset
    from snnrun.data.images import MNISTSource
    from snnrun.engine.experiment import resolved

    cfg = compose_cfg("+model=diehl_cook", "data=mnist_variant", "data.variant=low_contrast", f"data.root={MNIST}",
                      "data.limit_train=50", "data.limit_test=20")
    data = build_dataset(resolved(cfg)["data"])
    plain = MNISTSource(root=str(MNIST), download=False, limit_train=50, limit_test=20).load()
    assert torch.allclose(data.train.x, 0.25 + 0.5 * plain.train.x) and torch.equal(data.train.y, plain.train.y)
    assert torch.allclose(data.test.x, 0.25 + 0.5 * plain.test.x)
    assert cfg.data.intensity == "auto"
