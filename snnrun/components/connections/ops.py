"""Stateless connections: pooling, flatten, batch norm, dropout.

Between two neuron groups, or as steps of a :class:`~snnrun.components.connections.chain.Chain`
(``ops: [...]``). Their output shape follows from the source's shape.
"""

from __future__ import annotations

import torch
from torch import nn

from snnrun.components.connections.base import Connection
from snnrun.errors import ConfigError


def _tup(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


class _ShapedOp(Connection):
    """An operation whose output shape is found by one dummy forward pass."""

    def _infer_shape(self) -> None:
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                y = self(torch.zeros(2, *self.source_shape))
        except RuntimeError as e:
            raise ConfigError(f"does not fit its input of shape {list(self.source_shape)}: "
                              f"{str(e).splitlines()[0]}", key=None) from e
        finally:
            self.train(was)
        out = tuple(y.shape[1:])
        if 0 in out:
            raise ConfigError(f"input of shape {list(self.source_shape)} leaves an empty output {list(out)}",
                              key=None)
        if self.target_shape is not None and self.target_shape != out:
            raise ConfigError(f"{self.registered_name} turns {list(self.source_shape)} into {list(out)}, but the "
                              f"target group '{self.target}' has n: {list(self.target_shape)}", key=None)
        self.target_shape = out


class _Pool(_ShapedOp):
    op: type

    def __init__(self, source: str = "", target: str = "", *, kernel_size=2, stride=None, padding=0, **kw):
        super().__init__(source, target, **kw)
        self.need_dims(3, " (channels, height, width)")
        self.pool = self.op(_tup(kernel_size), None if stride is None else _tup(stride), _tup(padding))
        self._infer_shape()

    def forward(self, x):
        return self.pool(x.reshape(x.shape[0], *self.source_shape))


@Connection.register("max_pool", "max_pool2d")
class MaxPool(_Pool):
    """2-D max pooling over (C, H, W) (stride defaults to kernel_size); on spikes: OR over the window."""

    op = nn.MaxPool2d


@Connection.register("avg_pool", "avg_pool2d")
class AvgPool(_Pool):
    """2-D average pooling over (C, H, W) (stride defaults to kernel_size)."""

    op = nn.AvgPool2d


class _SumPool2d(nn.AvgPool2d):
    """Sum over each window: average pooling with divisor 1 (exact, no division)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding, divisor_override=1)


@Connection.register("sum_pool", "sum_pool2d")
class SumPool(_Pool):
    """2-D sum pooling over (C, H, W) (stride defaults to kernel_size): each output is the sum of
    its window, y = sum over the window (NIR's SumPool2d; on spikes, the window's spike count)."""

    op = _SumPool2d


@Connection.register("flatten")
class Flatten(_ShapedOp):
    """Each sample as one vector: (B, C, H, W) -> (B, C*H*W)."""

    def __init__(self, source: str = "", target: str = "", **kw):
        super().__init__(source, target, **kw)
        self._infer_shape()

    def forward(self, x):
        return x.flatten(1)


@Connection.register("batch_norm", "bn")
class BatchNorm(_ShapedOp):
    """Batch norm shared by all time steps (BatchNorm1d for vectors, BatchNorm2d for (C, H, W);
    SpikingJelly's ``SeqToANNContainer(BatchNorm)``). Run layer by layer its training statistics
    are taken over T x B, step by step over the B of each step; with running statistics (eval)
    the two agree exactly."""

    def __init__(self, source: str = "", target: str = "", *, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, **kw):
        super().__init__(source, target, **kw)
        if len(self.source_shape) not in (1, 3):
            raise ConfigError(f"batch_norm needs (features,) or (channels, height, width) inputs, got "
                              f"{list(self.source_shape)}", key=None)
        cls = nn.BatchNorm1d if len(self.source_shape) == 1 else nn.BatchNorm2d
        self.bn = cls(self.source_shape[0], eps=float(eps), momentum=float(momentum), affine=bool(affine))
        self._infer_shape()

    def forward(self, x):
        return self.bn(x)

    def set_trainable(self, on: bool) -> None:
        for p in self.bn.parameters():
            p.requires_grad_(on)


@Connection.register("dropout")
class Dropout(_ShapedOp):
    """Dropout with one mask per sample for all time steps (SpikingJelly's layer.Dropout): a
    dropped unit stays silent for the whole presentation; y = x m / (1 - p), m ~ Bernoulli(1 - p).
    Identity in eval mode."""

    def __init__(self, source: str = "", target: str = "", *, p: float = 0.5, **kw):
        super().__init__(source, target, **kw)
        if not 0.0 <= float(p) < 1.0:
            raise ConfigError(f"p must be in [0, 1), got {p}", key="p")
        self.p = float(p)
        self.mask: torch.Tensor | None = None
        self._infer_shape()

    def reset(self) -> None:
        self.mask = None

    def _mask(self, like: torch.Tensor) -> torch.Tensor:
        if self.mask is None or self.mask.shape != like.shape:
            keep = torch.empty_like(like).bernoulli_(1.0 - self.p)
            self.mask = keep / (1.0 - self.p)
        return self.mask

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return x * self._mask(x)

    def forward_multi(self, x_seq):
        if not self.training or self.p == 0.0:
            return x_seq
        return x_seq * self._mask(x_seq[0])

    def extra_repr(self) -> str:
        return f"p={self.p}"
