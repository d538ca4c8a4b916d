"""Event datasets (data=nmnist, dvs_gesture, shd) read through tonic from tiny files written here in
each dataset's on-disk format, binned into frames; the frames encoder; the N-MNIST csnn recipe.

Expected frames are computed here from the events by the binning rule written out (tonic's
``ToFrame(n_time_bins=T)``): T windows of length w = floor((t_last - t_first) / T) from the first
event, half-open [t_first + i w, t_first + (i + 1) w), each frame counting events per cell.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from snnrun.components.encoders import Encoder
from snnrun.data import build_dataset
from snnrun.errors import ConfigError


def expected_frames(t, cells, T, shape):
    """Counts (T, *shape) of events at times t (us) in cells (tuples of indices into shape)."""
    out = np.zeros((T, *shape), dtype=np.int64)
    t = np.asarray(t, dtype=np.float64)
    w = (t.max() - t.min()) // T
    for ti, cell in zip(t, cells):
        i = int((ti - t.min()) // w)
        if i < T:
            out[(i, *cell)] += 1
    return out


def random_events(rng, n, width, height, t_max):
    x, y = rng.integers(0, width, n), rng.integers(0, height, n)
    p = rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, t_max, n))
    return x, y, p, t


# --------------------------------------------------------------------------- N-MNIST
def write_nmnist_bin(path, x, y, p, t):
    """N-MNIST's 40-bit events: x (8 bits), y (8), polarity (1) + time in us (23), big-endian."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = np.zeros((len(x), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (np.asarray(p) << 7) | ((np.asarray(t) >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (np.asarray(t) >> 8) & 0xFF, np.asarray(t) & 0xFF
    path.write_bytes(raw.tobytes())


def nmnist_tree(root, rng, per_class=2, classes=(0, 1, 2)):
    want = {}
    for split in ("Train", "Test"):
        for c in classes:
            for k in range(per_class):
                ev = random_events(rng, 300, 34, 34, 300_000)
                path = root / "NMNIST" / split / str(c) / f"{k:05d}.bin"
                write_nmnist_bin(path, *ev)
                want[(split, c, k)] = ev
    return want


def test_nmnist_files_read_and_binned(tmp_path):
    pytest.importorskip("tonic")
    rng = np.random.default_rng(0)
    want = nmnist_tree(tmp_path, rng)
    data = build_dataset({"type": "nmnist", "root": str(tmp_path), "time_bins": 5, "shape": [2, 34, 34],
                          "n_classes": 10})
    assert data.shape == (2, 34, 34) and data.train.x.shape == (6, 5, 2, 34, 34) and data.train.x.dtype == torch.uint8
    assert sorted(data.train.y.tolist()) == [0, 0, 1, 1, 2, 2]
    # every recording's frames: match each sample to its file by its frames
    expected = {key: expected_frames(t, zip(p, y, x), 5, (2, 34, 34)) for key, (x, y, p, t) in want.items()}
    for split, s in (("Train", data.train), ("Test", data.test)):
        for xi, yi in zip(s.x, s.y):
            matches = [k for k, e in expected.items() if k[0] == split and k[1] == int(yi)
                       and np.array_equal(xi.numpy(), e)]
            assert len(matches) == 1
    # limits read a fixed random choice of recordings
    small = build_dataset({"type": "nmnist", "root": str(tmp_path / "NMNIST"), "time_bins": 5, "shape": [2, 34, 34],
                           "n_classes": 10, "limit_train": 3, "limit_test": 2})
    again = build_dataset({"type": "nmnist", "root": str(tmp_path), "time_bins": 5, "shape": [2, 34, 34],
                           "n_classes": 10, "limit_train": 3, "limit_test": 2})
    assert len(small.train) == 3 and len(small.test) == 2 and torch.equal(small.train.x, again.train.x)


def test_the_nmnist_csnn_recipe_trains(tmp_path, compose_cfg):
    pytest.importorskip("tonic")
    from snnrun.engine.loop import train

    nmnist_tree(tmp_path, np.random.default_rng(1), per_class=3)
    cfg = compose_cfg("+model=csnn_nmnist", "data=nmnist", f"data.root={tmp_path}", "model.T=4", "model.channels=2",
                      "model.hidden=8", "trainer.epochs=1", "trainer.batch_size=4", "logger=plain", "device=cpu")
    assert cfg.data.time_bins == 4  # the frames follow the model's time steps
    summary = train(cfg, tmp_path / "run")
    assert summary["n_test"] == 9 and 0.0 <= summary["test_accuracy"] <= 1.0


# --------------------------------------------------------------------------- DVS Gesture
def test_dvs_gesture_files_read_binned_and_downsampled(tmp_path):
    pytest.importorskip("tonic")
    rng = np.random.default_rng(2)
    want = {}
    for split in ("ibmGestureTrain", "ibmGestureTest"):
        for user, label in (("user01_fluorescent", 3), ("user02_led", 10)):
            x, y, p, t = random_events(rng, 500, 128, 128, 2_000)  # t in ms in tonic's preprocessed files
            d = tmp_path / "DVSGesture" / split / user
            d.mkdir(parents=True)
            np.save(d / f"{label}.npy", np.stack([x, y, p, t], 1).astype(np.float64))
            want[(split, label)] = expected_frames(t * 1000, zip(p, y // 4, x // 4), 6, (2, 32, 32))
    data = build_dataset({"type": "dvs_gesture", "root": str(tmp_path), "time_bins": 6, "downsample": 4,
                          "shape": [2, 32, 32], "n_classes": 11})
    for split, s in (("ibmGestureTrain", data.train), ("ibmGestureTest", data.test)):
        assert s.x.shape == (2, 6, 2, 32, 32)
        for xi, yi in zip(s.x, s.y):
            assert np.array_equal(xi.numpy(), want[(split, int(yi))])


# --------------------------------------------------------------------------- SHD
def test_shd_files_read_and_binned(tmp_path):
    pytest.importorskip("tonic")
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(3)
    want = {}
    for split, labels in (("train", [0, 19, 7]), ("test", [5, 12])):
        times, units = [], []
        for i, label in enumerate(labels):
            n = 400
            t = np.sort(rng.uniform(0, 0.8, n)).astype(np.float32)  # seconds, as in the SHD files
            u = rng.integers(0, 700, n).astype(np.uint16)
            times.append(t)
            units.append(u)
            want[(split, label)] = expected_frames(t.astype(np.float64) * 1e6, zip(u), 8, (700,))
        path = tmp_path / "SHD" / f"shd_{split}.h5"
        path.parent.mkdir(exist_ok=True)
        with h5py.File(path, "w") as f:
            for name, arrays, dt in (("spikes/times", times, np.float32), ("spikes/units", units, np.uint16)):
                ragged = np.empty(len(arrays), dtype=object)  # variable-length rows, as in the SHD files
                ragged[:] = arrays
                f.create_dataset(name, data=ragged, dtype=h5py.vlen_dtype(dt))
            f.create_dataset("labels", data=np.array(labels, dtype=np.uint16))
    data = build_dataset({"type": "shd", "root": str(tmp_path), "time_bins": 8, "shape": [700], "n_classes": 20})
    assert data.train.x.shape == (3, 8, 700) and data.test.x.shape == (2, 8, 700)
    for split, s in (("train", data.train), ("test", data.test)):
        for xi, yi in zip(s.x, s.y):
            assert np.array_equal(xi.numpy(), want[(split, int(yi))])


# --------------------------------------------------------------------------- errors, encoder
def test_a_missing_root_names_the_layout(tmp_path):
    pytest.importorskip("tonic")
    with pytest.raises(ConfigError) as e:
        build_dataset({"type": "nmnist", "root": str(tmp_path), "shape": [2, 34, 34], "n_classes": 10})
    assert e.value.key == "data.root" and "NMNIST/Train/<digit>/*.bin" in e.value.message


def test_without_tonic_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tonic", None)
    with pytest.raises(ConfigError) as e:
        build_dataset({"type": "shd", "root": str(tmp_path), "shape": [700], "n_classes": 20})
    assert e.value.key == "data.type" and "snnrun[events]" in e.value.message


def test_frames_encoder_presents_frame_floor_t_f_over_t():
    x = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)  # batch 2, F = 3 frames of 4 values
    enc = Encoder.build({"type": "frames", "time": 6, "dt": 1})
    out = enc(x)
    assert out.shape == (6, 2, 4) and out.dtype == torch.float32
    for t in range(6):  # frame floor(t * 3 / 6) = 0, 0, 1, 1, 2, 2
        assert torch.equal(out[t], x[:, (t * 3) // 6].float())
    same = Encoder.build({"type": "frames", "time": 3, "dt": 1})(x)
    assert torch.equal(same, x.transpose(0, 1).float())  # F = T: one frame per step
    assert Encoder.build({"type": "frames", "time": 3, "dt": 1, "binary": True})(x).max() == 1.0
    still = Encoder.build({"type": "frames", "time": 4, "dt": 1})(torch.rand(2, 1, 5))
    assert torch.equal(still[0], still[3])  # F = 1: a static input at every step
