"""Datasets: the digits split, IDX files in both layouts, clear errors for missing files."""

import gzip
import struct

import numpy as np
import pytest
import torch

from snnrun.data import DatasetSource, build_dataset
from snnrun.data.images import read_idx
from snnrun.errors import ConfigError
from snnrun.engine.loop import train

MNIST_T10K = "../shared/data/mnist-t10k"


def write_idx(path, arr, gz):
    arr = np.asarray(arr, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_mnist_dir(d, n_train=30, n_test=10, gz=True, side=28):
    """Tiny MNIST-format files: each class is a bright vertical bar at its own column."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = rng.integers(0, 30, size=(n, side, side))
        for i, k in enumerate(y):
            x[i, :, 2 + 2 * k] = 250
        write_idx(d / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx(d / f"{prefix}-labels-idx1-ubyte", y, gz)
    return d


def test_digits_split_is_fixed_stratified_and_scaled():
    a = build_dataset({"type": "digits"})
    b = build_dataset({"type": "digits"})
    assert torch.equal(a.train.y, b.train.y) and torch.equal(a.test.x, b.test.x)
    assert len(a.train) + len(a.test) == 1797 and a.shape == (1, 8, 8)
    assert 0.0 <= a.train.x.min() and a.train.x.max() <= 1.0
    counts = torch.bincount(a.test.y, minlength=10).float()
    assert counts.min() >= 35 and counts.max() <= 37  # ~20% of each class (174..183 per class)


def test_limits_cap_samples():
    d = build_dataset({"type": "digits", "limit_train": 100, "limit_test": 7})
    assert len(d.train) == 100 and len(d.test) == 7
    with pytest.raises(ConfigError) as e:
        build_dataset({"type": "digits", "limit_train": 0})
    assert e.value.key == "data.limit_train"


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_idx_files_in_both_layouts(tmp_path, gz, layout):
    d = tmp_path / "MNIST" / "raw" if layout == "torchvision" else tmp_path
    make_mnist_dir(d, gz=gz)
    ds = build_dataset({"type": "mnist", "root": str(tmp_path), "download": False})
    assert ds.shape == (1, 28, 28) and len(ds.train) == 30 and len(ds.test) == 10
    assert ds.train.y[:3].tolist() == [0, 1, 2]
    assert ds.train.x[0, 0, 5, 2].item() == pytest.approx(250 / 255)


def test_missing_training_files_say_what_to_put_where(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(ConfigError) as e:
        build_dataset({"type": "mnist", "root": str(tmp_path), "download": False})
    msg = str(e.value)
    assert e.value.key == "data.root"
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg


def test_real_mnist_test_set_reads(tmp_path):
    import os

    if not os.path.isdir(MNIST_T10K):
        pytest.skip("shared MNIST test files not present")
    x = read_idx(__import__("pathlib").Path(MNIST_T10K) / "t10k-images-idx3-ubyte.gz")
    assert x.shape == (10000, 28, 28) and x.max() == 255


def test_truncated_idx_is_a_clear_error(tmp_path):
    p = write_idx(tmp_path / "t", np.zeros((4, 2, 2)), gz=False)
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(p)


def test_fashion_mnist_uses_its_own_folder(tmp_path):
    make_mnist_dir(tmp_path / "FashionMNIST" / "raw")
    ds = build_dataset({"type": "fashion_mnist", "root": str(tmp_path), "download": False})
    assert ds.name == "fashion_mnist" and len(ds.train) == 30


def test_trains_on_small_idx_files(compose_cfg, tmp_path):
    make_mnist_dir(tmp_path / "data", n_train=40, n_test=20)
    cfg = compose_cfg("+model=diehl_cook", "data=mnist", f"data.root={tmp_path / 'data'}", "data.download=false",
                      "model.n_neurons=20", "model.time=30", "logger=plain", "trainer.assign_every=20")
    summary = train(cfg, tmp_path / "run")
    assert summary["dataset"] == "mnist" and summary["n_train"] == 40 and summary["n_test"] == 20
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert (tmp_path / "run" / "weights.png").stat().st_size > 0


def test_registered_datasets():
    assert {"digits", "mnist", "fashion_mnist", "synthetic"} <= set(DatasetSource.registry.names())


def test_partial_local_copy_is_reported_not_downloaded_into(tmp_path):
    # only the test files are there (like ../shared/data/mnist-t10k): no download into that folder
    d = make_mnist_dir(tmp_path / "src")
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / f).write_bytes((d / f).read_bytes())
    root = tmp_path
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(ConfigError) as e:
        build_dataset({"type": "mnist", "root": str(root), "download": True})
    assert "train-images-idx3-ubyte" in str(e.value) and "download failed" not in str(e.value)
    assert sorted(p.name for p in root.iterdir()) == before  # no MNIST/raw created
