"""The dataset interface: a split (images and labels), a loaded dataset with its shape and its
training distortions, and ``DatasetSource``, the registered base class every dataset implements
(``load_splits``); ``build_dataset`` builds one from the ``data`` config node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snnrun.errors import ConfigError
from snnrun.model_schema import DATA_PARAMS
from snnrun.registry import Registered, Registry


@dataclass
class Split:
    x: torch.Tensor  # (N, *shape) float in [0, 1]
    y: torch.Tensor  # (N,) long

    def __len__(self) -> int:
        return len(self.y)

    def limit(self, n: int | None) -> "Split":
        return self if n is None else Split(self.x[: int(n)], self.y[: int(n)])


@dataclass
class Dataset:
    train: Split
    test: Split
    shape: tuple[int, ...]
    n_classes: int
    name: str
    augment_shift: int = 0  # training images shifted by up to N pixels (snnrun/data/augment.py)
    augment_rotate: float = 0.0  # ... turned by up to this many degrees
    augment_scale: float | tuple[float, float] = 0.0  # ... and scaled by a factor in [1 - f, 1 + f] or [low, high]


class DatasetSource(Registered):
    """Base class: ``load() -> Dataset``. ``limit_train``/``limit_test`` cap the sample counts."""

    # options are checked against their annotated types (int, float, bool) before a dataset is
    # built, and these ranges (snnrun/model_schema.py)
    registry: Registry = Registry("dataset", ranges=DATA_PARAMS)

    def __init__(self, *, shape=None, n_classes: int = 10, limit_train: int | None = None,
                 limit_test: int | None = None, n_inputs: int | None = None,
                 intensity: float | str | None = None, augment_shift: int = 0,
                 augment_rotate: float = 0.0, augment_scale: float | list[float] = 0.0):
        # shape / n_classes / n_inputs / intensity (the input rate, Hz of a white pixel, that
        # rate encoders should use on this dataset) are declared in the data config so that model
        # configs can interpolate them (${data.n_inputs}); the loader checks the shape.
        self.shape = tuple(shape) if shape is not None else None
        self.n_classes = int(n_classes)
        for k, v in (("limit_train", limit_train), ("limit_test", limit_test)):
            if v is not None and int(v) <= 0:
                raise ConfigError(f"must be a positive number of samples or null, got {v}", key=k)
        self.limit_train, self.limit_test = limit_train, limit_test
        self.augment_shift = int(augment_shift)
        self.augment_rotate = float(augment_rotate)
        self.augment_scale = tuple(augment_scale) if isinstance(augment_scale, (list, tuple)) else float(augment_scale)

    def load(self) -> Dataset:
        train, test, shape = self.load_splits()
        if self.shape is not None and tuple(self.shape) != tuple(shape):
            raise ConfigError(f"data.shape says {list(self.shape)} but the data are {list(shape)}",
                              key="shape")
        return Dataset(train.limit(self.limit_train), test.limit(self.limit_test), tuple(shape),
                       self.n_classes, getattr(self, "registered_name", type(self).__name__),
                       self.augment_shift, self.augment_rotate, self.augment_scale)

    def load_splits(self) -> tuple[Split, Split, tuple[int, ...]]:  # pragma: no cover
        raise NotImplementedError


def build_dataset(node) -> Dataset:
    source = DatasetSource.registry.build(node, key="data")
    try:
        return source.load()
    except ConfigError as e:
        if e.key and not e.key.startswith("data"):
            e.key = f"data.{e.key}"
            e.args = (f"{e.key}: {e.message}",)
        raise


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class shuffled split with a fixed seed: the same split on every machine."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_idx, test_idx = np.concatenate(train_idx), np.concatenate(test_idx)
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)
    return train_idx, test_idx

