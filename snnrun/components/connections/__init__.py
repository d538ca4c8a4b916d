"""Connections: weighted (dense, one_to_one, lateral, conv2d), stateless ops (pooling, flatten,
batch norm, dropout) and chains of them, all in one registry (``snnrun list connections``)."""

from snnrun.components.connections.base import Connection, init_weights
from snnrun.components.connections.chain import Chain, build_connection
from snnrun.components.connections import ops, weighted  # noqa: F401  (registration)
from snnrun.components.connections.weighted import Conv2dConnection, DenseConnection

__all__ = ["Chain", "Connection", "Conv2dConnection", "DenseConnection", "build_connection", "init_weights"]
