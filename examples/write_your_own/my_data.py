"""A dataset of your own, used from a data config by ``_target_: my_data.BarsSource``.

The interface (snnrun/data.py, ``DatasetSource``): ``load_splits()`` returns
``(train, test, shape)``: two ``Split(x, y)`` with images ``x`` float in [0, 1] of shape
``(N, *shape)`` and labels ``y`` long in ``0 .. n_classes - 1``. The base class takes the keys
every data config has (``shape``, ``n_classes``, ``n_inputs``, ``intensity``, ``limit_train``,
``limit_test``) and checks ``shape``; your ``__init__`` takes the others (here ``n_train``,
``n_test``, ``noise``, ``seed``). Data configs are typed (snnrun/schema.py): they need ``type``
(required by the schema; with ``_target_``, which picks the class, its value is not used), ``shape``,
``n_inputs`` and ``n_classes``.
"""

from __future__ import annotations

import torch

from snnrun.data import DatasetSource, Split


class BarsSource(DatasetSource):
    """Noisy 8x8 images of one bar: horizontal, vertical, diagonal or anti-diagonal (4 classes),
    at a random position (diagonals: one of the two main ones)."""

    def __init__(self, *, n_train: int = 400, n_test: int = 200, noise: float = 0.1, seed: int = 0, **kw):
        super().__init__(**kw)
        self.n_train, self.n_test, self.noise, self.seed = int(n_train), int(n_test), float(noise), int(seed)

    def load_splits(self):
        g = torch.Generator().manual_seed(self.seed)
        side = 8

        def bar(label: int, pos: int) -> torch.Tensor:
            img = torch.zeros(side, side)
            if label == 0:
                img[pos, :] = 1.0
            elif label == 1:
                img[:, pos] = 1.0
            elif label == 2:
                img = torch.eye(side)
            else:
                img = torch.eye(side).flip(1)
            return img

        def make(n: int) -> Split:
            y = torch.randint(0, 4, (n,), generator=g)
            pos = torch.randint(0, side, (n,), generator=g)
            x = torch.stack([bar(int(k), int(p)) for k, p in zip(y, pos)]).unsqueeze(1)
            x = (x + self.noise * torch.randn(x.shape, generator=g)).clamp(0, 1)
            return Split(x, y)

        return make(self.n_train), make(self.n_test), (1, side, side)
