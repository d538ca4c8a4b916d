"""Network: neuron groups joined by connections, built from config, simulated over time.

One graph, whatever trains it. Each connection has a ``delay`` of 0 (the source's spikes of the
same step drive the target) or 1 (those of the last step: BindsNET's semantics, the default
``network.delay``). Two ways to run a presentation of T steps give the same numbers:

- **layer by layer** (``multi``): groups in topological order, each over all T steps at once
  (a connection with delay 1 sees its source's train shifted by one step). Stateless
  connections run once on the merged (T*B) batch and neuron models with a fused multi-step
  kernel use it. Chosen when the graph has no cycle and no connection's weights change within
  a presentation (a local rule while learning);
- **step by step** (``single``): every step, the delay-1 currents from the last step's spikes,
  then the groups in topological order of the delay-0 connections, then the local rules, then
  the counters. Needed by recurrence (lateral inhibition) and by rules that learn every step.

``network.step_mode`` (auto, multi, single) may force one. ``train()``/``eval()`` switch local
learning and adaptive parameters (thresholds) on/off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from snnrun.components.connections import Connection, build_connection
from snnrun.components.learning.base import LearningRule
from snnrun.components.neurons import Input, NeuronModel
from snnrun.engine.random_keys import GOLDEN
from snnrun.errors import ConfigError
from snnrun.registry import as_node

STEP_MODES = ("auto", "multi", "single")
NETWORK_KEYS = ("groups", "connections", "delay", "step_mode")


class Network(nn.Module):
    """A batched spiking network (state ``(B, *shape)``, trains ``(T, B, *shape)``)."""

    def __init__(self, groups: Mapping[str, NeuronModel], connections: Mapping[str, Connection],
                 learners: Mapping[str, LearningRule] | None = None, dt: float = 1.0, step_mode: str = "auto"):
        super().__init__()
        if step_mode not in STEP_MODES:
            raise ConfigError(f"unknown step_mode '{step_mode}'. Allowed: {', '.join(STEP_MODES)}",
                              key="model.network.step_mode")
        self.groups = nn.ModuleDict(groups)
        self.connections = nn.ModuleDict(connections)
        self.learners = dict(learners or {})
        self.dt = float(dt)
        self.step_mode = step_mode
        # each group's incoming connections, with their names (step() looks delayed currents up by name)
        self._incoming = {g: [(n, c) for n, c in self.connections.items() if c.target == g] for g in self.groups}
        self._delayed = [n for n, c in self.connections.items() if c.delay == 1]
        self.order = self._topological(lambda c: c.delay == 0)  # within a step
        try:
            self.layer_order = self._topological(lambda c: True)
            self.feedforward = True
        except ConfigError:
            self.layer_order, self.feedforward = self.order, False
        # layer by layer, each group's train is freed after the last group that reads it
        last = {g: max([self.layer_order.index(c.target) for c in self.connections.values() if c.source == g],
                       default=self.layer_order.index(g)) for g in self.groups}
        self._last_read = {}
        for g, i in last.items():
            self._last_read.setdefault(self.layer_order[i], []).append(g)
        for i, g in enumerate(self.groups.values()):  # independent random streams, reproducible per seed
            g.rng_seed = (torch.initial_seed() + i * GOLDEN) % 2**62
        self._step = self.step
        self.compiled = False
        self.cpu_loop = None  # a compiled whole-presentation loop (snnrun/engine/cpu_loop.py), or None

    def _topological(self, edge) -> list[str]:
        """Group names so that every connection passing ``edge`` goes from earlier to later
        (Kahn's algorithm); a cycle raises ConfigError naming its groups."""
        incoming = {g: {c.source for _, c in self._incoming[g] if edge(c)} for g in self.groups}
        order, ready = [], [g for g in self.groups if not incoming[g]]
        while ready:
            g = ready.pop(0)
            order.append(g)
            for h in self.groups:
                if g in incoming[h]:
                    incoming[h].discard(g)
                    if not incoming[h] and h not in order and h not in ready:
                        ready.append(h)
        if len(order) < len(self.groups):
            cycle = sorted(set(self.groups) - set(order))
            raise ConfigError(f"the connections between groups {', '.join(cycle)} form a cycle in which every "
                              "connection has delay 0; give one of them delay: 1", key="model.network.connections")
        return order

    def layer_by_layer(self) -> bool:
        """Whether a presentation runs layer by layer (see the module docstring)."""
        if self.step_mode != "auto":
            return self.step_mode == "multi"
        return self.feedforward and not (self.training and self.learners)

    def compile_step(self, **options) -> None:
        """Run each time step through ``torch.compile`` (fuses the elementwise neuron, trace and
        learning updates into a few kernels); combine with CUDA-graph capture for speed.

        Dynamo keys its compiled code on ``Network.step``'s code object, shared by every network in
        the process, and guards on the instance: the runs of a sequential sweep (``-m``,
        ``snnrun reproduce``) would pile up entries until the recompile limit sends the step back
        to eager Python for every later run (6x slower). A new network therefore starts from a
        clean cache, and one network's legitimate variants (train/eval, the last partial batch of
        each split, the first step of a presentation) stay well inside the limit."""
        import torch._dynamo

        torch.compiler.reset()
        for limit in ("recompile_limit", "cache_size_limit"):  # the name differs across torch versions
            if hasattr(torch._dynamo.config, limit):
                setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 64))
        self._step = torch.compile(self.step, dynamic=False, **options)
        self.compiled = True

    def uncompile_step(self) -> None:
        self._step, self.compiled = self.step, False

    def use_strategy(self, strategy) -> None:
        """Hand a data-parallel strategy to the groups and local rules: they reduce their
        batch-shared quantities through it (snnrun/engine/data_parallel.py)."""
        for g in self.groups.values():
            g.data_parallel = strategy
        for rule in self.learners.values():
            rule.data_parallel = strategy

    # -- simulation ------------------------------------------------------------------------
    def reset_state(self, batch_size: int) -> None:
        for g in self.groups.values():
            g.reset_state(batch_size)
        for c in self.connections.values():
            c.reset()
        for rule in self.learners.values():
            rule.reset_state(batch_size)

    def _feed(self, group: NeuronModel, current: torch.Tensor | None) -> torch.Tensor:
        if current is None:
            current = group.state_tensor()
        elif current.dtype == torch.bool:
            current = current.to(group.dtype)
        return group(current)

    def step(self, inputs: Mapping[str, torch.Tensor], counts: Mapping[str, torch.Tensor] | None = None) -> None:
        """Advance one dt. ``inputs`` maps input-group names to this step's spikes/currents;
        ``counts`` (group name -> tensor) accumulate the groups' spikes in place."""
        delayed = {n: self.connections[n](self.groups[self.connections[n].source].s)  # last step's spikes
                   for n in self._delayed}
        for name in self.order:
            total = inputs.get(name)
            for cname, c in self._incoming[name]:
                i = delayed[cname] if c.delay == 1 else c(self.groups[c.source].s)
                total = i if total is None else total + i
            self._feed(self.groups[name], total)
        if self.training:
            for rule in self.learners.values():
                rule.step()
        for g, c in (counts or {}).items():  # inside the step: one fused kernel less per step
            c.add_(self.groups[g].s)

    def forward(self, inputs: Mapping[str, torch.Tensor], count: tuple[str, ...] = (),
                record: tuple[str, ...] = (), record_v: tuple[str, ...] = (),
                static: tuple[str, ...] = ()) -> dict[str, dict[str, torch.Tensor]]:
        """Simulate one batch. ``inputs`` are time-major ``(T, B, *shape)``; an input named in
        ``static`` is one ``(B, *shape)`` tensor presented at every one of ``T = steps`` steps
        (``inputs["steps"]``: direct encoding).

        Returns ``{"counts": {g: (B, *shape)}, "spikes": {g: (T, B, *shape)}, "v": {g: (T, B, *shape)}}``
        for the groups in ``count``, ``record`` and ``record_v``. State is reset at the start;
        weight normalisation runs at the end while learning (after each sample/batch, as BindsNET).
        Gradients flow when grad mode is on (callers pick inference mode otherwise).
        """
        inputs = dict(inputs)
        steps = int(inputs.pop("steps", 0))
        seqs = {k: v for k, v in inputs.items() if k not in static}
        T = {x.shape[0] for x in seqs.values()} | ({steps} if static else set())
        if len(T) != 1:
            raise ValueError(f"inputs disagree on the number of steps: {sorted(T)}")
        T = T.pop()
        some = next(iter(inputs.values()))
        B = some.shape[0] if next(iter(inputs)) in static else some.shape[1]
        self.reset_state(B)
        if self.layer_by_layer():
            out = self._run_layers(inputs, T, static, set(count) | set(record), record_v)
            out["counts"] = {g: out["spikes"][g].sum(0) for g in count}
            out["spikes"] = {g: out["spikes"][g] for g in record}
        elif self.cpu_loop is not None and not self.compiled and \
                self.cpu_loop.accepts(self, inputs, static, record, record_v):
            out = self.cpu_loop.run(self, next(iter(inputs.values())), count)
        else:
            out = self._run_steps(inputs, T, static, count, record, record_v)
        if self.training:
            for rule in self.learners.values():
                rule.end_presentation()
            with torch.no_grad():
                for c in self.connections.values():
                    c.normalize()
        return out

    run = forward

    def _run_steps(self, inputs, T, static, count, record, record_v):
        counts = {g: self.groups[g].state_tensor() for g in count}
        trains = {g: [] for g in record}
        vs = {g: [] for g in record_v}
        for t in range(T):
            self._step({k: (v if k in static else v[t]) for k, v in inputs.items()}, counts)
            for g in record:
                trains[g].append(self.groups[g].s.clone())
            for g in record_v:
                vs[g].append(self.groups[g].v.clone())
        return {"counts": counts, "spikes": {g: torch.stack(v) for g, v in trains.items()},
                "v": {g: torch.stack(v) for g, v in vs.items()}}

    def _run_layers(self, inputs, T, static, keep, record_v):
        """Every group over all T steps, in topological order."""
        seq: dict[str, torch.Tensor] = {}   # spike trains (T, B, ...)
        once: dict[str, torch.Tensor] = {}  # static inputs (B, ...), the same at every step
        vs = {}
        for name in self.layer_order:
            group = self.groups[name]
            if name in static:
                once[name] = inputs[name].to(group.dtype) if inputs[name].dtype == torch.bool else inputs[name]
                seq[name] = once[name].unsqueeze(0).expand(T, *once[name].shape)
                continue
            total = inputs.get(name)
            for _, c in self._incoming[name]:
                if c.source in once and c.delay == 0:  # a static source: the connection's output is too
                    y = c(once[c.source])
                    i = y.unsqueeze(0).expand(T, *y.shape)
                else:
                    src = seq[c.source]
                    if c.delay == 1:
                        src = torch.cat([torch.zeros_like(src[:1]), src[:-1]])
                    i = c.forward_multi(src)
                total = i if total is None else total + i
            if total is None:
                total = group.state_tensor().unsqueeze(0).expand(T, *group.shape)
            elif total.dtype == torch.bool:
                total = total.to(group.dtype)
            want_v = name in record_v
            if isinstance(group, Input) and not group.traces:
                seq[name] = total.to(group.state_dtype)
            elif hasattr(group, "forward_multi"):
                group.store_v_seq = want_v
                seq[name] = group.forward_multi(total)
                if want_v:
                    vs[name] = group.v_seq
            else:  # a neuron model without a multi-step method: step through time
                outs, v = [], []
                for t in range(T):
                    outs.append(group(total[t]))
                    if want_v:
                        v.append(group.v.clone())
                seq[name] = torch.stack(outs)
                if want_v:
                    vs[name] = torch.stack(v)
            # drop trains nobody reads any more (memory of long presentations)
            for done in self._last_read.get(name, ()):
                if done not in keep and done not in once:
                    seq.pop(done, None)
        return {"spikes": {g: seq[g] for g in keep}, "v": vs}


def build_network(node: Mapping[str, Any], dt: float, key: str = "model.network",
                  learner: Any = None) -> Network:
    """Build a Network from ``{groups: {...}, connections: {...}, delay: 1, step_mode: auto}``.

    A group without ``n`` takes the shape its first incoming connection produces (conv maps,
    pooled maps, ``out_features``), so a feed-forward stack needs sizes only where they are
    chosen. ``learner`` is a ``model.learner`` node (see :mod:`snnrun.engine.learners`); the
    experiment builds the model's learners itself and leaves it out."""
    node = as_node(node)
    unknown = set(node) - set(NETWORK_KEYS)
    if unknown:
        hint = " (learners moved to model.learner)" if "learners" in unknown else ""
        raise ConfigError(f"unknown section(s) {sorted(unknown)}{hint}; allowed: {', '.join(NETWORK_KEYS)}",
                          key=key)
    groups_cfg = node.get("groups") or {}
    if not groups_cfg:
        raise ConfigError("a network needs at least one neuron group", key=f"{key}.groups")
    default_delay = node.get("delay", 1)
    if default_delay not in (0, 1):
        raise ConfigError(f"delay is 0 (same step) or 1 (last step's spikes), got {default_delay!r}",
                          key=f"{key}.delay")
    conns_cfg = {}
    for name, c in (node.get("connections") or {}).items():
        ckey = f"{key}.connections.{name}"
        if c is None:  # null removes a connection the model file inherited (an experiment's override)
            continue
        c = dict(as_node(c))
        for role in ("source", "target"):
            if role not in c:
                raise ConfigError(f"missing '{role}' (one of the groups: {', '.join(groups_cfg)})", key=ckey)
            if c[role] not in groups_cfg:
                raise ConfigError(f"no neuron group '{c[role]}'. Groups: {', '.join(groups_cfg)}",
                                  key=f"{ckey}.{role}")
        c.setdefault("delay", default_delay)
        conns_cfg[name] = c

    groups: dict[str, NeuronModel] = {}
    connections: dict[str, Connection] = {}

    def build_group(name: str, shape=None) -> None:
        g = dict(as_node(groups_cfg[name]))
        if shape is not None and "n" not in g:
            g["n"] = list(shape)
        groups[name] = NeuronModel.build(g, key=f"{key}.groups.{name}", dt=dt)

    for name, g in groups_cfg.items():
        if g is not None and "n" in (as_node(g)):
            build_group(name)
    pending = dict(conns_cfg)
    while pending:  # connections whose source exists; groups sized by their first connection
        ready = [n for n, c in pending.items() if c["source"] in groups]
        if not ready:
            missing = sorted({c["source"] for c in pending.values()} - set(groups))
            raise ConfigError(f"cannot tell the size of group(s) {', '.join(missing)}: give them 'n' or an "
                              "incoming connection from a sized group", key=f"{key}.groups.{missing[0]}")
        for name in ready:
            c = pending.pop(name)
            ckey = f"{key}.connections.{name}"
            tgt = groups.get(c["target"])
            conn = build_connection(c, ckey, source_shape=groups[c["source"]].shape,
                                    target_shape=None if tgt is None else tgt.shape)
            connections[name] = conn
            if tgt is None:
                build_group(c["target"], conn.out_shape)
            elif tuple(conn.out_shape) != tuple(tgt.shape):
                raise ConfigError(f"produces current of shape {list(conn.out_shape)} but group '{c['target']}' "
                                  f"has shape {list(tgt.shape)}", key=ckey)
    for name in groups_cfg:
        if name not in groups:
            raise ConfigError("give this group 'n' (it has no incoming connection to size it)",
                              key=f"{key}.groups.{name}")
    groups = {name: groups[name] for name in groups_cfg}  # config order
    net = Network(groups, {n: connections[n] for n in conns_cfg}, dt=dt, step_mode=str(node.get("step_mode", "auto")))
    if learner is not None:
        from snnrun.engine.learners import build_learners

        build_learners(learner, net, dt)
    return net
