"""Image datasets, registered by name. Each returns float images in [0, 1] and integer labels.

``digits`` (scikit-learn's bundled 8x8 handwritten digits) is the embedded default so the main
command works offline; ``mnist``/``fashion_mnist`` read the IDX files (torchvision's layout);
``mnist_variant`` derives harder MNIST variants (snnrun/data/variants.py); ``synthetic`` makes
noisy class prototypes for tests.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from snnrun.data.base import DatasetSource, Split, stratified_split
from snnrun.errors import ConfigError


@DatasetSource.register("digits")
class DigitsSource(DatasetSource):
    """scikit-learn's 1,797 8x8 handwritten digits (pixel values 0..16 scaled to [0, 1]),
    split per class into train/test with a fixed seed (``split_seed``, ``test_fraction``)."""

    def __init__(self, *, test_fraction: float = 0.2, split_seed: int = 0, **kw):
        super().__init__(**kw)
        if not 0.0 < float(test_fraction) < 1.0:
            raise ConfigError(f"must be in (0, 1), got {test_fraction}", key="test_fraction")
        self.test_fraction, self.split_seed = float(test_fraction), int(split_seed)

    def load_splits(self):
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
        y = torch.from_numpy(d.target.astype(np.int64))
        tr, te = stratified_split(d.target, self.test_fraction, self.split_seed)
        return Split(x[tr], y[tr]), Split(x[te], y[te]), (1, 8, 8)


@DatasetSource.register("synthetic")
class SyntheticSource(DatasetSource):
    """Random binary class prototypes plus pixel noise: a fast, learnable task for tests."""

    def __init__(self, *, n_train: int = 200, n_test: int = 100, noise: float = 0.1, seed: int = 0,
                 shape=(1, 8, 8), **kw):
        super().__init__(shape=shape, **kw)
        self.n_train, self.n_test, self.noise, self.seed = int(n_train), int(n_test), float(noise), int(seed)

    def load_splits(self):
        g = torch.Generator().manual_seed(self.seed)
        protos = (torch.rand((self.n_classes, *self.shape), generator=g) < 0.3).float()

        def make(n):
            y = torch.arange(n) % self.n_classes
            y = y[torch.randperm(n, generator=g)]
            x = protos[y] + self.noise * torch.randn((n, *self.shape), generator=g)
            return Split(x.clamp(0, 1), y)

        return make(self.n_train), make(self.n_test), self.shape


# -- MNIST-style IDX files -------------------------------------------------------------------
IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or extracted): magic 0x00 0x00 dtype ndim, then big-endian dims.

    A file that cannot be read, a damaged gzip stream, a wrong header or fewer values than the
    header's dimensions is a ConfigError naming the file and what is wrong with it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except EOFError:
        raise ConfigError(f"{path} is truncated: the gzip stream ends early (an interrupted download?); "
                          "delete it and fetch it again", key="root") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise ConfigError(f"{path} is not a valid gzip file ({e}); delete it and fetch it again",
                          key="root") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", key="root") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ConfigError(f"{path} is not an unsigned-byte IDX file (its first bytes are "
                          f"{data[:4].hex(' ') or 'missing'}, expected 00 00 08 <ndim>)", key="root")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ConfigError(f"{path} is truncated: its header announces {ndim} dimensions but the file "
                          f"has {len(data)} bytes", key="root")
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ConfigError(f"{path} is truncated or damaged: its header says {' x '.join(map(str, dims))} = "
                          f"{int(np.prod(dims))} values, the file holds {arr.size}", key="root")
    return arr.reshape(tuple(dims))


class IDXSource(DatasetSource):
    """MNIST-format datasets through torchvision.

    ``root`` may hold the four standard IDX files (``.gz`` or extracted) directly, or in
    torchvision's layout ``root/<Folder>/raw/``. If they are missing and ``download`` is true,
    torchvision downloads them into ``root`` (needs internet).
    """

    folder = "MNIST"
    torchvision_class = "MNIST"

    def __init__(self, *, root: str = "~/.cache/snnrun/data", download: bool = True, **kw):
        super().__init__(**kw)
        self.root = Path(os.path.expanduser(str(root)))
        self.download = bool(download)

    def find(self, stem: str) -> Path | None:
        for d in (self.root, self.root / self.folder / "raw", self.root / "raw"):
            for name in (stem, stem + ".gz"):
                if (d / name).is_file():
                    return d / name
        return None

    def missing(self) -> list[str]:
        return [s for split in (True, False) for s in IDX_FILES[split] if self.find(s) is None]

    def fetch(self) -> None:
        """torchvision's download into root/<Folder>/raw; on failure, remove the folders it made."""
        import torchvision

        cls = getattr(torchvision.datasets, self.torchvision_class)
        made = [d for d in (self.root / self.folder / "raw", self.root / self.folder) if not d.exists()]
        try:
            for train in (True, False):
                cls(str(self.root), train=train, download=True)
        except Exception:
            for d in made:  # innermost first; only folders left empty
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
            raise

    def load_splits(self):
        missing = self.missing()
        # a root that already holds some of the files is a local copy: report what is missing
        # there instead of downloading into it
        if missing and self.download and len(missing) == 4:
            try:
                self.fetch()
            except Exception as e:  # no internet, proxy, disk: say what to do instead
                reason = f" (download failed: {type(e).__name__}: {str(e).splitlines()[0][:120]})"
            else:
                reason = ""
            missing = self.missing()
        else:
            reason = (" (download: false)" if not self.download else "") if missing else ""
        if missing:
            raise ConfigError(
                f"{self.folder} files not found in {self.root}{reason}. Missing: "
                f"{', '.join(missing)} (each may be .gz). Put the four IDX files "
                f"{', '.join(IDX_FILES[True] + IDX_FILES[False])} in {self.root} or in "
                f"{self.root / self.folder / 'raw'}, or set data.root=DIR to where they are.",
                key="root",
            )

        def split(train: bool) -> Split:
            img_stem, lbl_stem = IDX_FILES[train]
            x = read_idx(self.find(img_stem))
            y = read_idx(self.find(lbl_stem))
            if len(x) != len(y):
                raise ConfigError(f"{img_stem} has {len(x)} images but {lbl_stem} {len(y)} labels",
                                  key="root")
            # torch converts with all cores (numpy's astype + divide is one thread);
            # the same correctly rounded float32 x / 255
            with warnings.catch_warnings():  # x is a read-only view of the file's bytes, only read here
                warnings.simplefilter("ignore", UserWarning)
                pixels = torch.from_numpy(x)
            return Split(pixels.to(torch.float32).div_(255.0).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))

        train, test = split(True), split(False)
        return train, test, tuple(train.x.shape[1:])


@DatasetSource.register("mnist")
class MNISTSource(IDXSource):
    """MNIST handwritten digits (28x28, 60,000 train / 10,000 test) via torchvision."""


@DatasetSource.register("fashion_mnist")
class FashionMNISTSource(IDXSource):
    """Fashion-MNIST clothing images (28x28, 10 classes) via torchvision."""

    folder = "FashionMNIST"
    torchvision_class = "FashionMNIST"


@DatasetSource.register("mnist_variant")
class MNISTVariantSource(MNISTSource):
    """MNIST made harder by a deterministic transformation (``variant``: noise, thick,
    low_contrast, texture; snnrun/data/variants.py), generated from the MNIST files at load time.
    ``strength`` tunes it (null: the variant's default); ``variant_seed`` fixes its randomness
    (the test split uses variant_seed + 1)."""

    def __init__(self, *, variant: str = "noise", strength=None, variant_seed: int = 0, **kw):
        from snnrun.data.variants import check_variant

        super().__init__(**kw)
        self.strength = check_variant(str(variant), strength)
        self.variant, self.variant_seed = str(variant), int(variant_seed)

    def load_splits(self):
        from snnrun.data.variants import make_variant

        train, test, shape = super().load_splits()
        # only the images this run uses: a limited run does not transform all 60,000
        train, test = train.limit(self.limit_train), test.limit(self.limit_test)
        return (Split(make_variant(train.x, self.variant, self.strength, self.variant_seed), train.y),
                Split(make_variant(test.x, self.variant, self.strength, self.variant_seed + 1), test.y), shape)

