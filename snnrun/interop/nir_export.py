"""An snnrun network as a NIR graph (Neuromorphic Intermediate Representation, package ``nir`` 1.0).

Each neuron group becomes one NIR neuron node named as the group, each connection the chain of
NIR nodes of its ops (named ``<connection>`` or ``<connection>_<i>``), an input group NIR's
``Input`` and the readout feeds NIR's ``Output`` (named ``output``). What is exported, with
``d`` = ``nir_dt`` (NIR's time unit per snnrun step, seconds by convention; metadata ``nir_dt``):

Our discrete steps are forward-Euler steps of NIR's equations (nir.ir.neuron), so the mapping is
exact for an importer that steps them the same way (snnrun/components/neurons/nir_nodes.py):

=====================  ==========================================================================
snnrun group           NIR node (v measured from the group's initial potential v0: NIR starts at 0)
=====================  ==========================================================================
surrogate_lif          LIF: tau = d tau_steps; decay_input: r = 1, else r = tau_steps;
                       v_leak = 0; v_threshold = v_threshold - v_reset; v_reset = 0
plif                   as surrogate_lif with its learned tau_steps = 1 / sigmoid(w)
surrogate_if           IF: r = 1 / d; v_threshold = v_threshold - v_reset; v_reset = 0
lif (BindsNET)         LIF: per-step decay q = exp(-dt/tc_decay), tau = d / (1 - q),
                       r = 1 / (1 - q), v_leak = 0, thresholds and reset relative to rest
if (BindsNET)          IF: r = 1 / d, thresholds relative to reset
current_lif            CubaLIF: tau_syn = d / (1 - q_i), w_in = 1 / (1 - q_i), tau_mem and r as lif
diehl_cook,            LIF as lif with the frozen adaptive threshold folded in:
adaptive_lif           v_threshold = thresh + theta - rest (per neuron) -- approximated, see below
nir_lif/nir_if/...     themselves (a network imported from NIR)
=====================  ==========================================================================

Connections: dense -> Affine (weight = w^T, out x in) or Linear; conv2d -> Conv2d; a batch norm
right after a dense or conv2d is folded into it with its running statistics
(w' = w g / sqrt(var + eps), b' = (b - mean) g / sqrt(var + eps) + beta); avg_pool -> AvgPool2d;
sum_pool -> SumPool2d; flatten -> Flatten (start_dim 0: NIR shapes have no batch dimension);
one_to_one -> Scale; lateral -> Linear (weight (1 - I)); dropout is left out (identity at
inference); a connection with delay 1 ends in a Delay node of one step (d).

Refused, naming the config key: max pooling (no NIR node: use avg_pool, e.g. +model=csnn_avgpool),
a batch norm that follows no dense/conv2d, soft reset (v_reset: null), and every neuron model NIR
has no node for (izhikevich, adex, hh, alif, ...). Approximated with a warning: refractory
periods (NIR neurons have none), the adaptive thresholds (frozen at their trained value), the
one-spike-per-step rule of diehl_cook; the encoder (Poisson ...) is not part of the graph and is
described in the metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from snnrun.components.connections.chain import Chain
from snnrun.components.connections.ops import AvgPool, BatchNorm, Dropout, Flatten, MaxPool, SumPool
from snnrun.components.connections.weighted import (Conv2dConnection, DenseConnection, LateralConnection,
                                                    OneToOneConnection)
from snnrun.components.neurons import Input
from snnrun.components.neurons.adaptive import AdaptiveLIFNodes
from snnrun.components.neurons.integrate_fire import CurrentLIFNodes, IFNodes
from snnrun.components.neurons.lif import LIFNodes
from snnrun.components.neurons.nir_nodes import NIRCubaLIF, NIRIF, NIRLIF
from snnrun.components.neurons.trainable import IFNode, LIFNode, ParametricLIFNode
from snnrun.errors import ConfigError

OUTPUT = "output"
SUPPORTED_NEURONS = ("input", "surrogate_lif", "plif", "surrogate_if", "lif", "if", "current_lif",
                     "diehl_cook", "adaptive_lif", "nir_lif", "nir_if", "nir_cuba_lif")


def nir_module():
    try:
        import nir
    except ImportError as e:
        raise ConfigError("NIR export and import need the nir package: pip install 'snnrun[nir]' "
                          "(or pip install 'nir>=1.0,<1.1')", key="format") from e
    return nir


@dataclass
class Exported:
    """What :func:`network_to_nir` made: the graph and what it approximated (warnings)."""

    graph: Any
    approximations: list[str] = field(default_factory=list)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _full(shape, value) -> np.ndarray:
    """A float64 array of a group's shape (neuron parameters: bit-exact step factors on import)."""
    if isinstance(value, torch.Tensor):
        return np.broadcast_to(value.detach().cpu().double().numpy(), shape).copy()
    return np.full(shape, float(value), dtype=np.float64)


class _Exporter:
    def __init__(self, network, nir_dt: float, key: str):
        self.nir = nir_module()
        self.net, self.d, self.key = network, float(nir_dt), key
        self.approx: list[str] = []
        self.offsets: dict[str, float] = {}

    # -- neurons ---------------------------------------------------------------------------
    def neuron(self, name: str, g) -> Any:
        nir, d, shape = self.nir, self.d, g.shape
        gkey = f"{self.key}.groups.{name}"
        kind = getattr(g, "registered_name", type(g).__name__)
        if isinstance(g, Input):
            return nir.Input(input_type=np.array(shape))
        if type(g) in (LIFNode, ParametricLIFNode, IFNode):
            if g.v_reset is None:
                raise ConfigError("soft reset (v_reset: null) has no NIR node: NIR neurons reset to v_reset; "
                                  "set v_reset to a number to export", key=f"{gkey}.v_reset")
            v0 = g.v_reset
            self.offsets[name] = v0
            th, rst = _full(shape, g.v_threshold - v0), _full(shape, 0.0)
            if type(g) is IFNode:
                return nir.IF(r=_full(shape, 1.0 / d), v_threshold=th, v_reset=rst)
            k = float(torch.as_tensor(g.decay_factor()).detach())  # dt / tau (PLIF: sigmoid(w), learned)
            tau_steps = 1.0 / k
            r = 1.0 if g.decay_input else tau_steps
            return nir.LIF(tau=_full(shape, d * tau_steps), r=_full(shape, r), v_leak=_full(shape, 0.0),
                           v_threshold=th, v_reset=rst)
        if type(g) in (LIFNodes, AdaptiveLIFNodes, IFNodes, CurrentLIFNodes) or kind == "diehl_cook":
            return self.bindsnet(name, g, gkey)
        if type(g) in (NIRLIF, NIRCubaLIF, NIRIF):
            return self.reexport(g)
        raise ConfigError(f"neuron model '{kind}' has no NIR node. Exportable: {', '.join(SUPPORTED_NEURONS)}",
                          key=f"{gkey}.type")

    def bindsnet(self, name: str, g, gkey: str) -> Any:
        """BindsNET-style groups (mV, exact exponential decay per step q): v measured from v0."""
        nir, d, shape = self.nir, self.d, g.shape
        if getattr(g, "refrac", 0.0) > 0:
            self.approx.append(f"{gkey}.refrac: the refractory period ({g.refrac} ms) is dropped "
                               "(NIR neurons have none)")
        if getattr(g, "lbound", None) is not None:
            self.approx.append(f"{gkey}.lbound: the lower bound of v ({g.lbound}) is dropped")
        v0 = g.reset if type(g) is IFNodes else g.rest
        self.offsets[name] = v0
        th = g.threshold() if isinstance(g, AdaptiveLIFNodes) else g.thresh
        if isinstance(g, AdaptiveLIFNodes):
            self.approx.append(f"{gkey}.theta_plus: the adaptive threshold is frozen at its trained value "
                               "(thresh + theta per neuron; it no longer adapts)")
        if getattr(g, "one_spike", False):
            self.approx.append(f"{gkey}.one_spike: the one-spike-per-step choice is dropped (every neuron "
                               "that crosses its threshold spikes)")
        thr, rst = _full(shape, th) - v0, _full(shape, g.reset - v0)
        if type(g) is IFNodes:
            return nir.IF(r=_full(shape, 1.0 / d), v_threshold=thr, v_reset=rst)
        q = g.decay
        mem = dict(r=_full(shape, 1.0 / (1.0 - q)), v_leak=_full(shape, 0.0), v_threshold=thr, v_reset=rst)
        if type(g) is CurrentLIFNodes:
            qi = g.i_decay
            return nir.CubaLIF(tau_syn=_full(shape, d / (1.0 - qi)), tau_mem=_full(shape, d / (1.0 - q)),
                               w_in=_full(shape, 1.0 / (1.0 - qi)), **mem)
        return nir.LIF(tau=_full(shape, d / (1.0 - q)), **mem)

    def reexport(self, g) -> Any:
        """A node imported from NIR back to its NIR parameters (a = d/tau, b = d r/tau)."""
        nir, d = self.nir, g.nir_dt
        if abs(d - self.d) > 1e-12 * max(d, self.d):
            raise ConfigError(f"this network was imported with nir_dt={d}; export it with dt={d}", key="dt")
        a, b = (x.detach().cpu().double().numpy() for x in (getattr(g, "a", g.b), g.b))
        th, rst = _full(g.shape, g.v_th), _full(g.shape, g.v_rst)
        if isinstance(g, NIRIF):
            return nir.IF(r=b / d, v_threshold=th, v_reset=rst)
        mem = dict(r=b / a, v_leak=_full(g.shape, g.v_leak), v_threshold=th, v_reset=rst)
        if isinstance(g, NIRCubaLIF):
            a_s, b_s = (x.detach().cpu().double().numpy() for x in (g.a_syn, g.b_syn))
            return nir.CubaLIF(tau_syn=d / a_s, tau_mem=d / a, w_in=b_s / a_s, **mem)
        return nir.LIF(tau=d / a, **mem)

    # -- connections -----------------------------------------------------------------------
    def ops(self, cname: str, c) -> list[tuple[str, Any]]:
        """The NIR nodes of one connection, in order."""
        ckey = f"{self.key}.connections.{cname}"
        parts = list(c.ops) if isinstance(c, Chain) else [c]
        keys = [f"{ckey}.ops.{i}" for i in range(len(parts))] if isinstance(c, Chain) else [ckey]
        nodes: list[list] = []  # [name, node-spec] with weights still foldable
        for op, okey in zip(parts, keys):
            if isinstance(op, BatchNorm):
                if not nodes or nodes[-1][1][0] not in ("dense", "conv2d"):
                    raise ConfigError("batch norm can be exported only right after a dense or conv2d (it is "
                                      "folded into its weights)", key=okey)
                self.fold(nodes[-1][1], op.bn)
                continue
            if isinstance(op, Dropout):
                continue
            if isinstance(op, MaxPool):
                raise ConfigError("max pooling has no NIR node (NIR has avg and sum pooling): use "
                                  "type: avg_pool (e.g. +model=csnn_avgpool) to export", key=f"{okey}.type")
            nodes.append([okey, self.op_spec(op, okey)])
        names = [cname] if len(nodes) == 1 else [f"{cname}_{i}" for i in range(len(nodes))]
        out = [(n, self.op_node(spec)) for n, (_, spec) in zip(names, nodes)]
        if c.delay == 1:
            out.append((f"{cname}_delay", self.nir.Delay(delay=np.full(c.out_shape, self.d))))
        return out

    def op_spec(self, op, okey: str) -> tuple:
        if isinstance(op, DenseConnection):
            b = None if op.b is None else _np(op.b)
            return ["dense", _np(op.w).T.copy(), b]
        if isinstance(op, Conv2dConnection):
            b = None if op.b is None else _np(op.b)
            return ["conv2d", _np(op.w), b, op]
        if isinstance(op, (AvgPool, SumPool)):
            p = op.pool
            pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
            stride = p.stride if p.stride is not None else p.kernel_size
            return ("sum_pool" if isinstance(op, SumPool) else "avg_pool", pair(p.kernel_size), pair(stride),
                    pair(p.padding))
        if isinstance(op, Flatten):
            return ("flatten", np.array(op.source_shape))
        if isinstance(op, OneToOneConnection):
            return ("scale", _np(op.w).reshape(op.out_shape))
        if isinstance(op, LateralConnection):
            n = op.n_source
            return ["dense", float(op.w) * (np.ones((n, n), dtype=np.float32) - np.eye(n, dtype=np.float32)), None]
        kind = getattr(op, "registered_name", type(op).__name__)
        raise ConfigError(f"connection '{kind}' has no NIR node. Exportable: dense, conv2d, avg_pool, sum_pool, "
                          "flatten, one_to_one, lateral, batch_norm (folded), dropout (left out)", key=f"{okey}.type")

    @staticmethod
    def fold(spec: list, bn: torch.nn.Module) -> None:
        """Batch norm with running statistics folded into the weights before it (in float64)."""
        kind, w, b = spec[0], spec[1], spec[2]
        mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
        g = bn.weight.detach().double().numpy() if bn.affine else np.ones_like(mean)
        beta = bn.bias.detach().double().numpy() if bn.affine else np.zeros_like(mean)
        scale = g / np.sqrt(var + bn.eps)
        b = np.zeros_like(mean) if b is None else b.astype(np.float64)
        w64 = w.astype(np.float64) * (scale[:, None] if kind == "dense" else scale[:, None, None, None])
        spec[1], spec[2] = w64.astype(w.dtype), ((b - mean) * scale + beta).astype(w.dtype)

    def op_node(self, spec: tuple) -> Any:
        nir, kind = self.nir, spec[0]
        if kind == "dense":
            w, b = spec[1], spec[2]
            return nir.Linear(weight=w) if b is None else nir.Affine(weight=w, bias=b)
        if kind == "conv2d":
            w, b, op = spec[1], spec[2], spec[3]
            return nir.Conv2d(input_shape=tuple(op.source_shape[1:]), weight=w, stride=op.stride,
                              padding=op.padding, dilation=1, groups=1,
                              bias=np.zeros(w.shape[0], dtype=w.dtype) if b is None else b)
        if kind in ("avg_pool", "sum_pool"):
            cls = nir.AvgPool2d if kind == "avg_pool" else nir.SumPool2d
            return cls(kernel_size=spec[1], stride=spec[2], padding=spec[3])
        if kind == "flatten":
            return nir.Flatten(input_type={"input": spec[1]}, start_dim=0, end_dim=-1)
        if kind == "scale":
            return nir.Scale(scale=spec[1])
        raise AssertionError(kind)

    # -- graph -----------------------------------------------------------------------------
    def graph(self, readout: str, metadata: dict[str, Any]) -> Exported:
        nodes: dict[str, Any] = {}
        edges: list[tuple[str, str]] = []
        for name, g in self.net.groups.items():
            nodes[name] = self.neuron(name, g)
        for cname, c in self.net.connections.items():
            chain = self.ops(cname, c)
            prev = c.source
            for n, node in chain:
                if n in nodes:
                    raise ConfigError(f"the NIR node name '{n}' of connection {cname} is also a group's name; "
                                      "rename one", key=f"{self.key}.connections.{cname}")
                nodes[n] = node
                edges.append((prev, n))
                prev = n
            edges.append((prev, c.target))
        nodes[OUTPUT] = self.nir.Output(output_type=np.array(self.net.groups[readout].shape))
        edges.append((readout, OUTPUT))
        meta = {**metadata, "nir_dt": self.d, "voltage_offsets": json.dumps(self.offsets),
                "approximations": json.dumps(self.approx)}
        try:
            graph = self.nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=True)
        except (ValueError, AssertionError) as e:
            raise ConfigError(f"the exported graph does not type-check in nir: {e}", key=self.key) from e
        return Exported(graph, list(self.approx))


def network_to_nir(network, *, readout: str, nir_dt: float, metadata: dict[str, Any] | None = None,
                   key: str = "model.network") -> Exported:
    """The NIR graph of a built (and loaded) network; its readout group feeds the graph's Output.

    ``nir_dt`` is the length of one step in NIR's time unit (time constants are ``nir_dt`` times
    their value in steps). Raises ConfigError naming the config key of what NIR cannot express."""
    if not (isinstance(nir_dt, (int, float)) and math.isfinite(nir_dt) and nir_dt > 0):
        raise ConfigError(f"must be a positive number of seconds per step, got {nir_dt!r}", key="dt")
    was = network.training
    network.eval()  # batch norm's running statistics, dropout off
    try:
        return _Exporter(network, float(nir_dt), key).graph(readout, dict(metadata or {}))
    finally:
        network.train(was)
