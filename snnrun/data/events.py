"""Event datasets through ``tonic`` (``pip install 'snnrun[events]'``), offline from ``data.root``:
``data=nmnist``, ``data=dvs_gesture``, ``data=shd``.

Each recording's events are read with tonic's reader for that dataset's on-disk format and binned
with tonic's ``ToFrame(n_time_bins=time_bins)``: ``time_bins`` windows of equal length
``w = floor((t_last - t_first) / time_bins)`` from the first event, each frame counting the
events of every (polarity, y, x) cell (or (channel,) for audio) in its window (counts clipped to
255, stored as uint8). A sample is ``(time_bins, *shape)``; the ``frames`` encoder presents frame
``floor(t F / T)`` at step t, so ``time_bins = model.T`` gives one frame per step (the data
configs default to ``${model.T}``).

Layouts (tonic's, after extracting its downloads; ROOT may also be the dataset's folder itself):

- N-MNIST (Orchard et al. 2015): ``ROOT/NMNIST/{Train,Test}/<digit>/*.bin`` (the 40-bit ATIS
  event format: x, y, polarity bit + 23-bit time in us, overflow events y = 240); 34 x 34, 2 polarities.
- DVS Gesture (Amir et al. 2017), tonic's preprocessed copy:
  ``ROOT/DVSGesture/{ibmGestureTrain,ibmGestureTest}/user<NN>_<lighting>/<label>.npy``, rows
  (x, y, p, t in ms); 128 x 128, 2 polarities, 11 classes. ``downsample: 4`` bins 4 x 4 pixels.
- SHD (Cramer et al. 2020): ``ROOT/SHD/shd_{train,test}.h5`` with ``spikes/times`` (s),
  ``spikes/units`` (0..699) and ``labels``; 700 channels, 20 classes.

``limit_train``/``limit_test`` read only that many recordings, a fixed random choice
(``split_seed``), so a quick run does not read the whole dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from snnrun.data.base import DatasetSource, Split
from snnrun.errors import ConfigError


def tonic_modules():
    try:
        import tonic
        import tonic.io
        import tonic.transforms
    except ImportError as e:
        raise ConfigError(f"event datasets read their files with tonic: pip install 'snnrun[events]' (or pip "
                          f"install tonic); import failed: {e}", key="type") from e
    return tonic


class EventSource(DatasetSource):
    """Base: list a split's recordings, read each one's events, bin them into frames."""

    folder = ""                      # tonic's folder under ROOT
    sensor_size: tuple[int, int, int] = (1, 1, 1)  # tonic's (W, H, P)

    def __init__(self, *, root: str = "~/.cache/snnrun/data", time_bins: int = 10, downsample: int = 1,
                 split_seed: int = 0, n_classes: int = 10, **kw):
        super().__init__(n_classes=n_classes, **kw)
        self.root = Path(os.path.expanduser(str(root)))
        if int(time_bins) < 1:
            raise ConfigError(f"must be a positive number of frames, got {time_bins}", key="time_bins")
        if int(downsample) < 1:
            raise ConfigError(f"must be a whole factor >= 1, got {downsample}", key="downsample")
        self.time_bins, self.downsample, self.split_seed = int(time_bins), int(downsample), int(split_seed)

    # -- what subclasses give -------------------------------------------------------------------
    def recordings(self, base: Path, train: bool) -> list[tuple[object, int]]:  # pragma: no cover
        """(what ``read`` takes, label) for every recording of the split."""
        raise NotImplementedError

    def read(self, item) -> np.ndarray:  # pragma: no cover
        """One recording's events as tonic's structured array (x, [y,] t in us, p)."""
        raise NotImplementedError

    def layout(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def found(self, base: Path) -> bool:  # pragma: no cover
        raise NotImplementedError

    # -- the common path ------------------------------------------------------------------------
    def base(self) -> Path:
        for d in (self.root / self.folder, self.root):
            if self.found(d):
                return d
        raise ConfigError(f"{self.registered_name} files not found in {self.root} (offline only: nothing is "
                          f"downloaded). Expected {self.layout()}; set data.root=DIR to where they are",
                          key="root")

    def frame_shape(self) -> tuple[int, ...]:
        w, h, p = self.sensor_size
        if h == 1:  # audio: channels only
            return (w,)
        f = self.downsample
        return (p, -(-h // f), -(-w // f))

    def frames(self, events: np.ndarray) -> torch.Tensor:
        tonic = tonic_modules()
        shape = (self.time_bins, *self.frame_shape())
        sensor = self.sensor_size
        if self.downsample > 1 and sensor[1] > 1:
            f = self.downsample
            events = events.copy()
            events["x"] //= f
            events["y"] //= f
            sensor = (-(-sensor[0] // f), -(-sensor[1] // f), sensor[2])
        if len(events) == 0:
            return torch.zeros(shape, dtype=torch.uint8)
        counts = tonic.transforms.ToFrame(sensor_size=sensor, n_time_bins=self.time_bins)(events)
        counts = np.clip(counts, 0, 255).astype(np.uint8).reshape(shape)
        return torch.from_numpy(counts)

    def split(self, base: Path, train: bool, limit: int | None) -> Split:
        items = self.recordings(base, train)
        if not items:
            raise ConfigError(f"no {'training' if train else 'test'} recordings in {base}; expected {self.layout()}",
                              key="root")
        order = np.random.default_rng(self.split_seed + (0 if train else 1)).permutation(len(items))
        if limit is not None:
            order = order[: int(limit)]
        x = torch.stack([self.frames(self.read(items[i][0])) for i in order])
        y = torch.tensor([int(items[i][1]) for i in order], dtype=torch.long)
        if int(y.min()) < 0 or int(y.max()) >= self.n_classes:
            raise ConfigError(f"labels run from {int(y.min())} to {int(y.max())}; n_classes is {self.n_classes}",
                              key="n_classes")
        return Split(x, y)

    def load_splits(self):
        tonic_modules()
        base = self.base()
        return (self.split(base, True, self.limit_train), self.split(base, False, self.limit_test),
                self.frame_shape())


@DatasetSource.register("nmnist")
class NMNISTSource(EventSource):
    """N-MNIST (Orchard et al. 2015): saccading event-camera recordings of MNIST, 34 x 34 x 2, in
    tonic's layout ROOT/NMNIST/{Train,Test}/<digit>/*.bin, read with ``tonic.io.read_mnist_file``."""

    folder = "NMNIST"
    sensor_size = (34, 34, 2)

    def found(self, base: Path) -> bool:
        return (base / "Train").is_dir() and (base / "Test").is_dir()

    def layout(self) -> str:
        return "ROOT/NMNIST/Train/<digit>/*.bin and ROOT/NMNIST/Test/<digit>/*.bin (the extracted N-MNIST zips)"

    def recordings(self, base, train):
        split = base / ("Train" if train else "Test")
        return [(p, int(p.parent.name)) for p in sorted(split.glob("[0-9]/*.bin"))]

    def read(self, item) -> np.ndarray:
        tonic = tonic_modules()
        return tonic.io.read_mnist_file(str(item), dtype=tonic.datasets.NMNIST.dtype)


@DatasetSource.register("dvs_gesture")
class DVSGestureSource(EventSource):
    """IBM DVS Gesture (Amir et al. 2017), tonic's preprocessed copy: one ``<label>.npy`` of rows
    (x, y, p, t ms) per gesture in ROOT/DVSGesture/{ibmGestureTrain,ibmGestureTest}/user<NN>_<light>/;
    128 x 128 x 2, 11 classes."""

    folder = "DVSGesture"
    sensor_size = (128, 128, 2)

    def found(self, base: Path) -> bool:
        return (base / "ibmGestureTrain").is_dir() and (base / "ibmGestureTest").is_dir()

    def layout(self) -> str:
        return ("ROOT/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy and .../ibmGestureTest/... "
                "(tonic's extracted ibmGestureTrain/Test.tar.gz)")

    def recordings(self, base, train):
        split = base / ("ibmGestureTrain" if train else "ibmGestureTest")
        return [(p, int(p.stem)) for p in sorted(split.glob("user*/*.npy"))]

    def read(self, item) -> np.ndarray:
        from numpy.lib import recfunctions

        tonic = tonic_modules()
        rows = np.load(item, allow_pickle=False).astype(np.float64)
        if rows.ndim != 2 or rows.shape[1] != 4:
            raise ConfigError(f"{item}: expected rows of (x, y, p, t), got an array of shape {list(rows.shape)}",
                              key="root")
        rows[:, 3] *= 1000  # ms -> us, as tonic
        return recfunctions.unstructured_to_structured(rows, tonic.datasets.DVSGesture.dtype)


@DatasetSource.register("shd")
class SHDSource(EventSource):
    """Spiking Heidelberg Digits (Cramer et al. 2020): spoken digits as spikes of 700 cochlea
    channels, ROOT/SHD/shd_{train,test}.h5 (spikes/times in s, spikes/units, labels); 20 classes."""

    folder = "SHD"
    sensor_size = (700, 1, 1)

    def __init__(self, *, n_classes: int = 20, **kw):
        super().__init__(n_classes=n_classes, **kw)

    def found(self, base: Path) -> bool:
        return (base / "shd_train.h5").is_file() and (base / "shd_test.h5").is_file()

    def layout(self) -> str:
        return "ROOT/SHD/shd_train.h5 and ROOT/SHD/shd_test.h5 (the unzipped SHD files)"

    def recordings(self, base, train):
        import h5py

        path = base / ("shd_train.h5" if train else "shd_test.h5")
        try:  # one pass over the file: every recording's (times, units) and its label
            with h5py.File(path, "r") as f:
                times, units, labels = f["spikes/times"][()], f["spikes/units"][()], np.asarray(f["labels"][()])
        except (OSError, KeyError) as e:
            raise ConfigError(f"{path}: not an SHD file (needs spikes/times, spikes/units, labels): {e}",
                              key="root") from e
        return [((t, u), int(label)) for t, u, label in zip(times, units, labels)]

    def read(self, item) -> np.ndarray:
        tonic = tonic_modules()
        times, units = item  # as tonic: times in us, an artificial polarity
        return tonic.io.make_structured_array(np.asarray(times, dtype=np.float64) * 1e6, np.asarray(units), 1,
                                              dtype=tonic.datasets.SHD.dtype)
