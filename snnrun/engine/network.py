"""Network: neuron groups and connections built from config, simulated step by step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from snnrun.components.connections import Connection
from snnrun.errors import ConfigError
from snnrun.components.learning import LearningRule
from snnrun.components.neurons import NeuronModel
from snnrun.engine.random_keys import GOLDEN
from snnrun.registry import _to_plain


class Network(nn.Module):
    """A batched spiking network.

    One time step (the simulation contract):

    1. every connection turns its source's spikes *of the last step* into current,
    2. every group updates from the summed current (input groups from their encoded input),
    3. local learning rules update their connections (only in ``train()`` mode),
    4. monitors record.

    ``train()``/``eval()`` switch learning on/off: in eval mode rules don't run and adaptive
    parameters (thresholds) are frozen.
    """

    def __init__(self, groups: Mapping[str, NeuronModel], connections: Mapping[str, Connection],
                 learners: Mapping[str, LearningRule] | None = None, dt: float = 1.0):
        super().__init__()
        self.groups = nn.ModuleDict(groups)
        self.connections = nn.ModuleDict(connections)
        self.learners = dict(learners or {})
        self.dt = float(dt)
        self._incoming = {g: [c for c in self.connections.values() if c.target == g] for g in self.groups}
        for i, g in enumerate(self.groups.values()):  # independent random streams, reproducible per seed
            g.rng_seed = (torch.initial_seed() + i * GOLDEN) % 2**62
        self._step = self.step
        self.compiled = False

    def compile_step(self, **options) -> None:
        """Run each time step through ``torch.compile`` (fuses the elementwise neuron, trace and
        learning updates into a few kernels); combine with CUDA-graph capture for speed."""
        self._step = torch.compile(self.step, dynamic=False, **options)
        self.compiled = True

    # -- simulation ------------------------------------------------------------------------
    def reset_state(self, batch_size: int) -> None:
        for g in self.groups.values():
            g.reset_state(batch_size)
        for rule in self.learners.values():
            rule.reset_state(batch_size)

    def step(self, inputs: Mapping[str, torch.Tensor], counts: Mapping[str, torch.Tensor] | None = None) -> None:
        """Advance one dt. ``inputs`` maps input-group names to this step's spikes/currents;
        ``counts`` (group name -> tensor) accumulate the groups' spikes in place."""
        currents = {}
        for name, group in self.groups.items():
            total = inputs.get(name)
            for c in self._incoming[name]:
                i = c(self.groups[c.source].s)
                total = i if total is None else total + i
            currents[name] = total if total is not None else group.state_tensor()
        for name, group in self.groups.items():
            group(currents[name].to(group.dtype) if currents[name].dtype == torch.bool else currents[name])
        if self.training:
            for rule in self.learners.values():
                rule.step()
        for g, c in (counts or {}).items():  # inside the step: one fused kernel less per step
            c.add_(self.groups[g].s)

    @torch.inference_mode()  # cheaper than no_grad for the many small per-step tensors
    def run(self, inputs: Mapping[str, torch.Tensor], count: tuple[str, ...] = (),
            record: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        """Simulate one batch: ``inputs`` are time-major ``(T, B, *shape)``.

        Returns the spike counts ``(B, *shape)`` of the groups in ``count`` and the full spike
        trains ``(T, B, *shape)`` of those in ``record``. State is reset at the start; weight
        normalisation runs at the end while learning (after each sample/batch, as BindsNET).
        """
        steps = {x.shape[0] for x in inputs.values()}
        if len(steps) != 1:
            raise ValueError(f"inputs disagree on the number of steps: {sorted(steps)}")
        T = steps.pop()
        B = next(iter(inputs.values())).shape[1]
        self.reset_state(B)
        counts = {g: self.groups[g].state_tensor() for g in count}
        trains = {g: [] for g in record}
        for t in range(T):
            self._step({k: v[t] for k, v in inputs.items()}, counts)
            for g in record:
                trains[g].append(self.groups[g].s.clone())
        if self.training:
            for rule in self.learners.values():
                rule.end_presentation()
            for c in self.connections.values():
                c.normalize()
        out = dict(counts)
        out.update({g: torch.stack(v) for g, v in trains.items()})
        return out


def build_network(node: Mapping[str, Any], dt: float, key: str = "model.network") -> Network:
    """Build a Network from a config node ``{groups: {...}, connections: {...}, learners: {...}}``."""
    node = _to_plain(node)
    unknown = set(node) - {"groups", "connections", "learners"}
    if unknown:
        raise ConfigError(f"unknown section(s) {sorted(unknown)}; allowed: groups, connections, learners",
                          key=key)
    if not node.get("groups"):
        raise ConfigError("a network needs at least one neuron group", key=f"{key}.groups")
    groups = {name: NeuronModel.build(g, key=f"{key}.groups.{name}", dt=dt)
              for name, g in node["groups"].items()}

    def group(name, ckey):
        if name not in groups:
            raise ConfigError(f"no neuron group '{name}'. Groups: {', '.join(groups)}", key=ckey)
        return groups[name]

    connections = {}
    for name, c in (node.get("connections") or {}).items():
        ckey = f"{key}.connections.{name}"
        for role in ("source", "target"):
            if role not in c:
                raise ConfigError(f"missing '{role}' (one of the groups: {', '.join(groups)})", key=ckey)
        src, tgt = group(c["source"], f"{ckey}.source"), group(c["target"], f"{ckey}.target")
        connections[name] = Connection.build(c, key=ckey, source_shape=src.shape, target_shape=tgt.shape)

    learners = {}
    for name, l in (node.get("learners") or {}).items():
        lkey = f"{key}.learners.{name}"
        l = dict(l)
        cname = l.pop("connection", None)
        if cname not in connections:
            raise ConfigError(f"'connection' must name a connection, one of: {', '.join(connections)}",
                              key=f"{lkey}.connection")
        conn = connections[cname]
        learners[name] = LearningRule.build(l, key=lkey, connection=conn, source=groups[conn.source],
                                            target=groups[conn.target], dt=dt)
    return Network(groups, connections, learners, dt=dt)
