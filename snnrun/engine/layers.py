"""A layer list as sugar for a network: ``model.layers`` (in order) -> groups and connections.

    layers:
      conv1: {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
      bn1:   {type: batch_norm}
      lif1:  {type: surrogate_lif}
      pool1: {type: max_pool, kernel_size: 2}
      flat:  {type: flatten}
      fc:    {type: dense, out_features: 10, bias: true, init: fan_in}
      out:   {type: surrogate_lif}

becomes an input group ``input`` (the data's shape), one group per neuron layer (named as the
layer) and, between consecutive groups, one connection (a chain of the ops between them, named
after its first op) with delay 0: the same graph as writing ``network:`` out by hand. The last
layer must be a neuron layer; it is the readout. As in torch's layers, a ``dense`` or ``conv2d``
layer defaults to a bias and ``init: fan_in`` (U(-1/sqrt(fan_in), 1/sqrt(fan_in))), where a
connection written in ``network:`` defaults to BindsNET's (no bias, U(0, 0.3)).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snnrun.components.neurons import NeuronModel
from snnrun.errors import ConfigError
from snnrun.registry import as_node, import_target

INPUT = "input"
TORCH_LIKE = ("dense", "linear", "conv2d", "conv")  # torch's defaults in a layer list


def _is_neuron(spec: dict) -> bool:
    if "_target_" in spec:
        obj = import_target(spec["_target_"])
        return isinstance(obj, type) and issubclass(obj, NeuronModel)
    return str(spec.get("type")) in NeuronModel.registry


def layers_to_network(layers: Mapping[str, Any] | list, in_shape, *, step_mode: str = "auto",
                      key: str = "model.layers") -> tuple[dict[str, Any], str]:
    """The network node for a layer list, and the name of its readout group."""
    items = list(layers.items()) if isinstance(layers, Mapping) else [(str(i), n) for i, n in enumerate(layers or [])]
    if not items:
        raise ConfigError("a model needs at least one layer", key=key)
    if any(name == INPUT for name, _ in items):
        raise ConfigError(f"'{INPUT}' names the input group of a layer list; rename that layer", key=f"{key}.{INPUT}")
    groups: dict[str, Any] = {INPUT: {"type": "input", "n": [int(d) for d in in_shape]}}
    connections: dict[str, Any] = {}
    ops: list[tuple[str, dict]] = []
    source = INPUT
    for name, spec in items:
        spec = as_node(spec, f"{key}.{name}")
        if _is_neuron(spec):
            if not ops:
                raise ConfigError(f"neuron layer '{name}' follows '{source}' with no connection between them",
                                  key=f"{key}.{name}")
            conn = {"source": source, "target": name, "delay": 0}
            if len(ops) == 1:
                conn.update(ops[0][1])
            else:
                conn["ops"] = [o for _, o in ops]
            connections[ops[0][0]] = conn
            groups[name] = spec
            source, ops = name, []
        else:
            if spec.get("type") in TORCH_LIKE:
                spec = {"init": "fan_in", "bias": True, **spec}
            ops.append((name, spec))
    if ops:
        raise ConfigError("a layer list ends with a neuron layer (the readout); add one after "
                          f"'{ops[-1][0]}'", key=f"{key}.{ops[-1][0]}")
    return {"groups": groups, "connections": connections, "delay": 0, "step_mode": step_mode}, source
