"""A NIR graph (a ``.nir`` file) as an snnrun network: ``+model=nir model.path=FILE``.

The graph's ``Input`` nodes and neuron nodes (LIF, IF, CubaLIF) become neuron groups named as the
nodes (``input`` groups; ``nir_lif``, ``nir_if``, ``nir_cuba_lif``: NIR's equations stepped by
forward Euler, snnrun/components/neurons/nir_nodes.py); every path of other nodes from one group
to the next becomes one connection, a chain of ops named after its first node:

    Affine/Linear -> dense (w = weight^T)   Conv2d -> conv2d       AvgPool2d -> avg_pool
    SumPool2d -> sum_pool                   Flatten -> flatten     Scale -> one_to_one
    Delay of one step (nir_dt) -> the connection's delay 1; any other connection has delay 0

The neuron feeding the graph's ``Output`` is the readout. Weights and per-neuron parameters are
loaded from the file after the network is built (:func:`load_nir_state`). ``nir_dt`` is the length
of one step in NIR's time unit: the file's metadata ``nir_dt`` (snnrun's exports) unless given.
Refused, naming the node: nested graphs, nodes NIR defines but snnrun does not run (Threshold, I,
LI, CubaLI, Conv1d), dilated or grouped convolutions, a delay other than one step, an output that
no neuron node feeds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnrun.errors import ConfigError
from snnrun.interop.nir_export import nir_module

NEURONS = {"LIF": "nir_lif", "IF": "nir_if", "CubaLIF": "nir_cuba_lif"}
OPS = ("Affine", "Linear", "Conv2d", "AvgPool2d", "SumPool2d", "Flatten", "Scale", "Delay", "Identity")
DEFAULT_NIR_DT = 1e-4  # snnTorch's NIR convention, for files that do not say


def read_graph(path: str | Path, key: str = "model.path"):
    nir = nir_module()
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise ConfigError(f"no NIR file at {p}", key=key)
    try:
        return nir.read(str(p))
    except Exception as e:  # h5py/nir raise many kinds on a file that is not NIR
        raise ConfigError(f"{p} is not a readable NIR file: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                          key=key) from e


def _name(n: str) -> str:
    """A NIR node name as a group/connection name (torch module names cannot hold '.')."""
    return re.sub(r"\W", "_", str(n))


def _meta(graph, name: str, default=None):
    v = (getattr(graph, "metadata", None) or {}).get(name, default)
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    return v


def _pair(v) -> list[int]:
    a = np.atleast_1d(np.asarray(v)).astype(int).tolist()
    return a * 2 if len(a) == 1 else a


class _Importer:
    def __init__(self, graph, nir_dt: float, surrogate, key: str):
        self.nir, self.graph, self.key = nir_module(), graph, key
        self.dt, self.surrogate = float(nir_dt), surrogate
        self.state: dict[str, torch.Tensor] = {}
        self.neuron_values: dict[str, tuple[str, dict[str, np.ndarray]]] = {}
        nodes = graph.nodes
        for n, node in nodes.items():
            t = type(node).__name__
            if t == "NIRGraph":
                raise ConfigError(f"node '{n}' is a nested graph (e.g. a recurrent layer of snnTorch); snnrun reads "
                                  "flat graphs only", key=key)
            if t not in NEURONS and t not in OPS and t not in ("Input", "Output"):
                raise ConfigError(f"node '{n}' is a NIR {t}, which snnrun does not run. It reads: Input, Output, "
                                  f"{', '.join(NEURONS)}, {', '.join(OPS)}", key=key)
        self.succ: dict[str, list[str]] = {n: [] for n in nodes}
        for a, b in graph.edges:
            self.succ[a].append(b)

    def kind(self, n: str) -> str:
        return type(self.graph.nodes[n]).__name__

    def is_group(self, n: str) -> bool:
        return self.kind(n) in NEURONS or self.kind(n) == "Input"

    def network(self) -> tuple[dict[str, Any], str]:
        nodes = self.graph.nodes
        groups: dict[str, Any] = {}
        for n, node in nodes.items():
            if self.kind(n) == "Input":
                shape = np.atleast_1d(np.asarray(node.input_type["input"])).astype(int).tolist()
                groups[_name(n)] = {"type": "input", "n": shape}
            elif self.kind(n) in NEURONS:
                groups[_name(n)] = self.neuron(n, node)
        outputs = [n for n in nodes if self.kind(n) == "Output"]
        if len(outputs) != 1:
            raise ConfigError(f"the graph has {len(outputs)} Output nodes; snnrun reads graphs with one", key=self.key)
        feeding = [a for a, b in self.graph.edges if b == outputs[0]]
        if len(feeding) != 1 or self.kind(feeding[0]) not in NEURONS:
            raise ConfigError(f"the Output node '{outputs[0]}' must be fed by one neuron node (the readout), got "
                              f"{', '.join(f'{f} ({self.kind(f)})' for f in feeding) or 'nothing'}", key=self.key)
        connections: dict[str, Any] = {}
        for g in [n for n in nodes if self.is_group(n)]:
            for path in self.paths(g):
                self.connection(g, path, connections)
        return {"groups": groups, "connections": connections, "delay": 0}, _name(feeding[0])

    def paths(self, start: str) -> list[list[str]]:
        """Every path of op nodes from a group to the next group (the last element)."""
        out, stack = [], [[s] for s in self.succ[start]]
        while stack:
            path = stack.pop()
            last = path[-1]
            if self.is_group(last) or self.kind(last) == "Output":
                if self.is_group(last):
                    out.append(path)
                elif len(path) > 1:
                    raise ConfigError(f"nodes {', '.join(path[:-1])} lead from '{start}' to the Output without a "
                                      "neuron node; snnrun's readout is a neuron group", key=self.key)
                continue
            if len(path) > len(self.graph.nodes):
                raise ConfigError(f"a cycle of op nodes without a neuron: {', '.join(path)}", key=self.key)
            stack += [path + [s] for s in self.succ[last]]
        return out

    def neuron(self, n: str, node) -> dict[str, Any]:
        kind = self.kind(n)
        shape = np.asarray(node.v_threshold).shape
        spec = {"type": NEURONS[kind], "n": list(shape) or [1], "nir_dt": self.dt, "surrogate": self.surrogate}
        values = {k: np.asarray(getattr(node, k), dtype=np.float64)
                  for k in ("tau", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")
                  if hasattr(node, k) and getattr(node, k) is not None}
        self.neuron_values[_name(n)] = (kind, values)
        return spec

    def connection(self, source: str, path: list[str], connections: dict[str, Any]) -> None:
        target, ops_nodes = path[-1], path[:-1]
        name = _name(ops_nodes[0]) if ops_nodes else f"{_name(source)}_{_name(target)}"
        while name in connections:
            name += "_"
        ops, delay = [], 0
        for n in ops_nodes:
            node, kind = self.graph.nodes[n], self.kind(n)
            at = len(ops)
            prefix = f"connections.{name}.ops.{at}"
            if kind in ("Affine", "Linear"):
                w = np.asarray(node.weight)
                if w.ndim != 2:
                    raise ConfigError(f"node '{n}': a {kind} weight of {w.ndim} dimensions; snnrun reads (out, in)",
                                      key=self.key)
                bias = kind == "Affine"
                ops.append({"type": "dense", "out_features": int(w.shape[0]), "bias": bias})
                self.state[f"{prefix}.w"] = torch.from_numpy(w.T.astype(np.float32).copy())
                if bias:
                    self.state[f"{prefix}.b"] = torch.from_numpy(np.asarray(node.bias, dtype=np.float32).reshape(-1))
            elif kind == "Conv2d":
                if np.any(np.asarray(node.dilation) != 1) or int(node.groups) != 1:
                    raise ConfigError(f"node '{n}': dilated or grouped convolutions are not supported", key=self.key)
                w = np.asarray(node.weight)
                pad = node.padding
                if isinstance(pad, (str, bytes)):
                    pad = pad.decode() if isinstance(pad, bytes) else pad
                    pad = [0, 0] if pad == "valid" else [(k - 1) // 2 for k in w.shape[2:]]
                ops.append({"type": "conv2d", "out_channels": int(w.shape[0]), "kernel_size": list(w.shape[2:]),
                            "stride": _pair(node.stride), "padding": _pair(pad), "bias": True})
                self.state[f"{prefix}.w"] = torch.from_numpy(w.astype(np.float32).copy())
                self.state[f"{prefix}.b"] = torch.from_numpy(np.asarray(node.bias, dtype=np.float32).reshape(-1))
            elif kind in ("AvgPool2d", "SumPool2d"):
                ops.append({"type": "avg_pool" if kind == "AvgPool2d" else "sum_pool",
                            "kernel_size": _pair(node.kernel_size), "stride": _pair(node.stride),
                            "padding": _pair(node.padding)})
            elif kind == "Flatten":
                ops.append({"type": "flatten"})
            elif kind == "Scale":
                ops.append({"type": "one_to_one"})
                self.state[f"{prefix}.w"] = torch.from_numpy(np.asarray(node.scale, dtype=np.float32).reshape(-1))
            elif kind == "Delay":
                steps = np.asarray(node.delay, dtype=np.float64) / self.dt
                if not np.allclose(steps, 1.0, rtol=1e-6) and not np.allclose(steps, 0.0):
                    raise ConfigError(f"node '{n}': a delay of {np.unique(steps)[:3].tolist()} steps of nir_dt={self.dt}; "
                                      "snnrun's connections delay by 0 or 1 step", key=self.key)
                delay = max(delay, int(round(float(steps.flat[0]))))
            # Identity: nothing
        if not ops:  # neuron to neuron directly: unit weights
            ops.append({"type": "one_to_one", "weight": 1.0})
        connections[name] = {"source": _name(source), "target": _name(target), "ops": ops, "delay": delay}

    def load(self, network) -> None:
        """Weights into the connections, per-neuron NIR parameters into the groups."""
        ours = network.state_dict()
        for k, v in self.state.items():
            if ours[k].shape != v.shape:
                raise ConfigError(f"{k} is {list(v.shape)} in the file, {list(ours[k].shape)} in the network",
                                  key=self.key)
        network.load_state_dict({**ours, **self.state})
        for name, (kind, values) in self.neuron_values.items():
            g = network.groups[name]
            ones = np.ones(g.shape)
            v = {k: np.broadcast_to(x, g.shape).copy() if x.size > 1 else x.reshape(()) * ones for k, x in values.items()}
            if kind == "IF":
                g.set_nir(v["r"], v["v_threshold"], v["v_reset"])
            elif kind == "LIF":
                g.set_nir(v["tau"], v["r"], v["v_leak"], v["v_threshold"], v["v_reset"])
            else:
                g.set_nir(v["tau_syn"], v["tau_mem"], v["r"], v["v_leak"], v["v_threshold"], v["v_reset"],
                          v.get("w_in", ones))


def nir_dt_of(graph, nir_dt: float | None) -> float:
    if nir_dt is not None:
        return float(nir_dt)
    d = _meta(graph, "nir_dt")
    return float(d) if d is not None else DEFAULT_NIR_DT


def nir_to_network(node: dict[str, Any], key: str = "model.nir") -> tuple[dict[str, Any], str, "_Importer"]:
    """``{path, nir_dt, surrogate}`` -> (the network node, the readout group, the importer whose
    ``load(network)`` puts the file's weights and neuron parameters into the built network)."""
    node = dict(node or {})
    unknown = set(node) - {"path", "nir_dt", "surrogate"}
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)}; allowed: path, nir_dt, surrogate", key=key)
    if not node.get("path"):
        raise ConfigError("name the NIR file: +model=nir model.path=FILE", key="model.path")
    graph = read_graph(node["path"])
    imp = _Importer(graph, nir_dt_of(graph, node.get("nir_dt")), node.get("surrogate") or "atan", key)
    net, readout = imp.network()
    return net, readout, imp
