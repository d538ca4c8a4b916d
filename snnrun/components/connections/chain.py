"""A chain of connections applied in order between two groups: ``ops: [pool, conv, batch norm]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from snnrun.components.connections.base import Connection
from snnrun.errors import ConfigError
from snnrun.registry import as_node


class Chain(Connection):
    """Source -> op_1 -> op_2 -> ... -> target, each op a registered connection whose source shape
    is the previous op's output (e.g. ``max_pool -> conv2d -> batch_norm`` between two LIF layers).
    Built from a connection node with ``ops:`` instead of ``type:``; ``delay`` is the chain's."""

    def __init__(self, source: str, target: str, *, ops: Sequence[Any], source_shape=(1,), target_shape=None,
                 delay: int | None = None, learn: bool = True, key: str = "ops"):
        super().__init__(source, target, source_shape=source_shape, target_shape=None, delay=delay, learn=learn)
        if not ops:
            raise ConfigError("a chain needs at least one op", key=key)
        built, shape = [], self.source_shape
        for i, spec in enumerate(ops):
            spec = dict(as_node(spec))
            for k in ("source", "target", "delay", "ops"):
                if k in spec:
                    raise ConfigError(f"'{k}' belongs to the connection, not to one of its ops", key=f"{key}.{i}.{k}")
            last = i == len(ops) - 1
            op = Connection.build(spec, key=f"{key}.{i}", source=source, target=target, source_shape=shape,
                                  target_shape=target_shape if last and _sized_by_target(spec) else None)
            built.append(op)
            shape = op.out_shape
        self.ops = nn.ModuleList(built)
        if target_shape is not None and tuple(target_shape) != tuple(shape):
            raise ConfigError(f"the ops turn {list(self.source_shape)} into {list(shape)}, but the target group "
                              f"'{target}' has n: {list(target_shape)}", key=key)
        self.target_shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op(x)
        return x

    def forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x_seq = op.forward_multi(x_seq)
        return x_seq

    def reset(self) -> None:
        for op in self.ops:
            op.reset()

    def set_trainable(self, on: bool) -> None:
        for op in self.ops:
            op.set_trainable(on)

    @property
    def has_weights(self) -> bool:  # type: ignore[override]
        return any(op.has_weights for op in self.ops)


def _sized_by_target(spec: dict) -> bool:
    """Whether the last op takes its size from the target group (dense without out_features,
    conv2d without out_channels)."""
    return "out_features" not in spec and "out_channels" not in spec


def build_connection(node: dict, key: str, *, source_shape, target_shape) -> Connection:
    """A connection from its config node: one registered connection (``type``/``_target_``) or a
    :class:`Chain` (``ops``)."""
    node = dict(node)
    if "ops" in node:
        if "type" in node or "_target_" in node:
            raise ConfigError("a connection has either 'type' (one connection) or 'ops' (a chain), not both",
                              key=key)
        unknown = set(node) - {"source", "target", "ops", "delay", "learn"}
        if unknown:
            raise ConfigError(f"unknown option(s) {sorted(unknown)} for a chain; allowed: source, target, ops, "
                              "delay, learn (options of an op go inside it)", key=key)
        return Chain(node["source"], node["target"], ops=node["ops"], source_shape=source_shape,
                     target_shape=target_shape, delay=node.get("delay"), learn=node.get("learn", True),
                     key=f"{key}.ops")
    return Connection.build(node, key=key, source_shape=source_shape, target_shape=target_shape)
