"""Feed-forward spiking models for gradient training: layers, the model, and its builder.

A model is an ordered mapping of named layers (``model.layers`` in a config)::

    layers:
      conv1: {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, bias: false}
      bn1:   {type: batch_norm}
      lif1:  {type: surrogate_lif, tau: 2.0}
      pool1: {type: max_pool, kernel_size: 2}
      flat:  {type: flatten}
      fc:    {type: dense, out_features: 10}
      out:   {type: surrogate_lif}

Each entry is a registered layer (``snnrun list layers``) or a registered neuron model (any
``snnrun list neurons``; the surrogate-gradient ones — :mod:`snnrun.components.neurons.trainable` — pass
gradients). Input sizes are inferred from the data shape layer by layer, so one model file serves
8x8 digits and 28x28 MNIST; a neuron layer gets ``n`` = the shape that reaches it.

Execution over T steps (tensors time-major, ``(T, B, *shape)``):

- ``multi`` (default): layer by layer over all T. Stateless layers run once on the merged
  ``(T*B, ...)`` batch; neuron layers run their ``forward_multi``. With a static input (direct
  encoding: the same image at every step) the stateless layers before the first neuron layer
  run once on ``(B, ...)``, since their output is the same at every step.
- ``single``: step by step, every layer once per step (what a recurrent or online model needs).

Both give the same outputs and gradients (tested). Dropout draws one mask per sample for all
T steps in both modes. Batch norm is time-shared (one set of statistics and affine parameters for
all steps, SpikingJelly's ``SeqToANNContainer(BatchNorm)``): in training mode, ``multi``
normalises over all T x B samples of a batch and ``single`` over the B of each step; in eval
mode, with running statistics, the two agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from snnrun.errors import ConfigError
from snnrun.components.neurons import NeuronModel
from snnrun.registry import Registered, Registry, _to_plain, did_you_mean, import_target

STEP_MODES = ("multi", "single")


class Layer(Registered, nn.Module):
    """Base of the stateless layers. ``in_shape`` (without batch) is set by the builder;
    :meth:`forward` maps ``(B, *in_shape) -> (B, *out_shape)``; :meth:`forward_multi` applies it to
    ``(T, B, ...)`` by merging T into the batch."""

    registry: Registry = Registry("layer")

    def __init__(self, in_shape=()):
        super().__init__()
        self.in_shape = tuple(int(d) for d in in_shape)

    def need_dims(self, dims: int, hint: str) -> None:
        if len(self.in_shape) != dims:
            raise ConfigError(f"{self.registered_name} takes inputs of {dims} dimension(s) per sample, but "
                              f"the input here has shape {list(self.in_shape)}{hint}", key=None)

    def forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor:
        T, B = x_seq.shape[:2]
        return self(x_seq.flatten(0, 1)).unflatten(0, (T, B))

    def reset(self) -> None:
        """Start a new batch (layers with per-sample state override this)."""


@Layer.register("dense", "linear")
class Dense(Layer):
    """Fully connected: ``y = x W^T + b`` (torch's Linear; in_features inferred)."""

    def __init__(self, in_shape=(), *, out_features: int, bias: bool = True):
        super().__init__(in_shape)
        self.need_dims(1, "; put a {type: flatten} layer before it")
        self.linear = nn.Linear(self.in_shape[0], int(out_features), bias=bool(bias))

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    def forward(self, x):
        return self.linear(x)


@Layer.register("conv2d", "conv")
class Conv2d(Layer):
    """2-D convolution over (C, H, W) inputs (torch's Conv2d; in_channels inferred)."""

    def __init__(self, in_shape=(), *, out_channels: int, kernel_size: int | list[int] = 3,
                 stride: int | list[int] = 1, padding: int | list[int] | str = 0, bias: bool = True):
        super().__init__(in_shape)
        self.need_dims(3, " (channels, height, width)")
        tup = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
        self.conv = nn.Conv2d(self.in_shape[0], int(out_channels), tup(kernel_size), tup(stride),
                              tup(padding), bias=bool(bias))

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    def forward(self, x):
        return self.conv(x)


class _Pool(Layer):
    op: Any

    def __init__(self, in_shape=(), *, kernel_size: int | list[int] = 2, stride: int | list[int] | None = None,
                 padding: int | list[int] = 0):
        super().__init__(in_shape)
        self.need_dims(3, " (channels, height, width)")
        tup = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
        self.pool = self.op(tup(kernel_size), None if stride is None else tup(stride), tup(padding))

    def forward(self, x):
        return self.pool(x)


@Layer.register("max_pool", "max_pool2d")
class MaxPool(_Pool):
    """2-D max pooling (stride defaults to kernel_size); on spikes: OR over the window."""

    op = nn.MaxPool2d


@Layer.register("avg_pool", "avg_pool2d")
class AvgPool(_Pool):
    """2-D average pooling (stride defaults to kernel_size)."""

    op = nn.AvgPool2d


@Layer.register("flatten")
class Flatten(Layer):
    """Flatten each sample to a vector: (B, C, H, W) -> (B, C*H*W)."""

    def forward(self, x):
        return x.flatten(1)


@Layer.register("batch_norm", "bn")
class BatchNorm(Layer):
    """Batch norm shared by all time steps (BatchNorm1d for vectors, BatchNorm2d for (C, H, W)).

    In ``multi`` step mode training statistics are taken over T x B, in ``single`` per step."""

    def __init__(self, in_shape=(), *, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__(in_shape)
        if len(self.in_shape) not in (1, 3):
            raise ConfigError(f"batch_norm needs (features,) or (channels, height, width) inputs, got "
                              f"{list(self.in_shape)}", key=None)
        cls = nn.BatchNorm1d if len(self.in_shape) == 1 else nn.BatchNorm2d
        self.bn = cls(self.in_shape[0], eps=float(eps), momentum=float(momentum), affine=bool(affine))

    def forward(self, x):
        return self.bn(x)


@Layer.register("dropout")
class Dropout(Layer):
    """Dropout with one mask per sample for all time steps (SpikingJelly's layer.Dropout).

    A dropped unit stays silent for the whole presentation. Identity in eval mode."""

    def __init__(self, in_shape=(), *, p: float = 0.5):
        super().__init__(in_shape)
        if not 0.0 <= float(p) < 1.0:
            raise ConfigError(f"p must be in [0, 1), got {p}", key="p")
        self.p = float(p)
        self.mask: torch.Tensor | None = None

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


def is_neuron(layer: nn.Module) -> bool:
    return isinstance(layer, NeuronModel)


class FeedForward(nn.Module):
    """A feed-forward spiking model: named layers run in order over T time steps.

    ``forward(x, steps=None)``: ``x`` is a time-major sequence ``(T, B, *in_shape)``, or, with
    ``steps``, one static input ``(B, *in_shape)`` presented at every one of ``steps`` steps.
    Returns ``{"out": (T, B, *out_shape), "v": (T, B, *out_shape) or None}``: the last layer's
    output (spikes for a neuron layer) and, when ``record_v`` is on and the last layer is a
    neuron layer, its membrane potential after each step. State is reset at every call.
    """

    def __init__(self, layers: Mapping[str, nn.Module], in_shape, step_mode: str = "multi"):
        super().__init__()
        if step_mode not in STEP_MODES:
            raise ConfigError(f"unknown step_mode '{step_mode}'. Allowed: {', '.join(STEP_MODES)}",
                              key="step_mode")
        self.layers = nn.ModuleDict(layers)
        self.in_shape = tuple(in_shape)
        self.step_mode = step_mode
        self.record_v = False
        mods = list(self.layers.values())
        first = next((i for i, m in enumerate(mods) if is_neuron(m)), len(mods))
        self.n_static = first  # stateless layers before the first neuron layer

    @property
    def readout(self) -> nn.Module:
        return list(self.layers.values())[-1]

    def forward(self, x: torch.Tensor, steps: int | None = None) -> dict[str, torch.Tensor | None]:
        mods = list(self.layers.values())
        B = x.shape[0] if steps is not None else x.shape[1]
        T = int(steps) if steps is not None else x.shape[0]
        for m in mods:
            if is_neuron(m):
                m.reset_state(B)
            else:
                m.reset()
        readout = mods[-1]
        want_v = self.record_v and is_neuron(readout)
        if self.step_mode == "multi":
            h = x
            start = 0
            if steps is not None:  # static input: the stateless prefix is the same at every step
                for m in mods[:self.n_static]:
                    h = m(h)
                h = h.unsqueeze(0).expand(T, *h.shape)
                start = self.n_static
            for m in mods[start:]:
                h = self._multi(m, h)
            v = readout.v_seq if want_v else None
            return {"out": h, "v": v}
        outs, vs = [], []
        for t in range(T):
            h = x if steps is not None else x[t]
            for m in mods:
                h = m(h)
            outs.append(h)
            if want_v:
                vs.append(readout.v)
        return {"out": torch.stack(outs), "v": torch.stack(vs) if want_v else None}

    def _multi(self, m: nn.Module, h: torch.Tensor) -> torch.Tensor:
        if hasattr(m, "forward_multi"):
            if is_neuron(m):
                m.store_v_seq = self.record_v and m is self.readout
            return m.forward_multi(h)
        # a neuron model without a multi-step method: step through time
        return torch.stack([m(h[t]) for t in range(h.shape[0])])


def build_feedforward(node: Mapping[str, Any] | list, in_shape, *, dt: float = 1.0, step_mode: str = "multi",
                      key: str = "model.layers") -> FeedForward:
    """Build a :class:`FeedForward` from ``model.layers`` (a mapping name -> layer node, in order;
    a list is named by position), inferring each layer's input shape from ``in_shape``."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    items = list(node.items()) if isinstance(node, Mapping) else [(str(i), n) for i, n in enumerate(node or [])]
    if not items:
        raise ConfigError("a model needs at least one layer", key=key)
    shape = tuple(int(d) for d in in_shape)
    layers: dict[str, nn.Module] = {}
    for name, spec in items:
        lkey = f"{key}.{name}"
        spec = _to_plain(spec) if spec is not None else {}
        kind = spec.get("type")
        if "_target_" not in spec and kind not in Layer.registry and kind not in NeuronModel.registry:
            options = Layer.registry.names() + NeuronModel.registry.names()
            raise ConfigError(f"unknown layer '{kind}'.{did_you_mean(str(kind), options)} Layers: "
                              f"{', '.join(Layer.registry.names())}; or any neuron model "
                              f"(snnrun list neurons)", key=f"{lkey}.type")
        if kind in Layer.registry or ("_target_" in spec and _is_layer_target(spec["_target_"])):
            layer = Layer.registry.build(spec, key=lkey, in_shape=shape)
            shape = _probe(layer, shape, lkey)
        else:
            layer = NeuronModel.build(spec, key=lkey, n=list(shape), dt=dt)
        layers[name] = layer
    return FeedForward(layers, in_shape, step_mode=step_mode)


def _is_layer_target(target: str) -> bool:
    obj = import_target(target)
    return isinstance(obj, type) and issubclass(obj, Layer)


@torch.no_grad()
def _probe(layer: Layer, shape: tuple[int, ...], key: str) -> tuple[int, ...]:
    """The output shape of a stateless layer for inputs of ``shape`` (one dummy forward pass)."""
    was = layer.training
    layer.eval()
    try:
        y = layer(torch.zeros(2, *shape))
    except RuntimeError as e:
        raise ConfigError(f"does not fit its input of shape {list(shape)}: {str(e).splitlines()[0]}",
                          key=key) from e
    finally:
        layer.train(was)
    out = tuple(y.shape[1:])
    if math.prod(out) == 0:
        raise ConfigError(f"input of shape {list(shape)} leaves an empty output {list(out)}", key=key)
    return out
