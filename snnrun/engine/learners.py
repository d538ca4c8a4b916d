"""A model's learners (``model.learner``): one learner, or a mapping of named learners (e.g. STDP
on a feature layer and a gradient learner for the readout), attached to a network's connections."""

from __future__ import annotations

from typing import Any

import torch

from snnrun.components.learning.base import Learner, LearningRule
from snnrun.errors import ConfigError
from snnrun.registry import as_node, import_target


def learner_nodes(node: Any) -> dict[str, dict[str, Any]]:
    """``model.learner`` as {name: node}: one learner (a node with ``type``/``_target_``) is named
    ``learner``; a mapping of named learners is taken as it is; null means no learning."""
    node = as_node(node) if node is not None else None
    if not node:
        return {}
    if isinstance(node, str):
        return {"learner": {"type": node}}
    if "type" in node or "_target_" in node:
        return {"learner": dict(node)}
    out = {}
    for name, sub in node.items():
        sub = as_node(sub, f"model.learner.{name}")
        if not isinstance(sub, dict) or not ("type" in sub or "_target_" in sub):
            raise ConfigError("a learner needs 'type' (snnrun list learners); several learners go in a mapping "
                              "of named learners, each with its own 'type'", key=f"model.learner.{name}")
        out[name] = dict(sub)
    return out


def _learner_class(node: dict, key: str):
    if "_target_" in node:
        return import_target(node["_target_"], key=f"{key}._target_")
    return LearningRule.registry.get(str(node["type"]), key=f"{key}.type")


def build_learners(node: Any, network, dt: float) -> dict[str, Learner]:
    """Build the model's learners; attach local rules to their connections and choose what the
    gradient learner (at most one) trains."""
    nodes = learner_nodes(node)
    learners: dict[str, Learner] = {}
    local: dict[str, LearningRule] = {}
    gradient_name = None
    single = list(nodes) == ["learner"]
    for name, spec in nodes.items():
        key = "model.learner" if single else f"model.learner.{name}"
        cls = _learner_class(spec, key)
        if getattr(cls, "gradient", False):
            if gradient_name is not None:
                raise ConfigError(f"one gradient learner per model ('{gradient_name}' is one)", key=key)
            gradient_name = name
            learners[name] = LearningRule.registry.build(spec, key=key)
            continue
        spec = dict(spec)
        cname = spec.pop("connection", None)
        if cname not in network.connections:
            raise ConfigError(f"'connection' must name a connection, one of: {', '.join(network.connections)}",
                              key=f"{key}.connection")
        conn = network.connections[cname]
        weightless = not isinstance(getattr(conn, "w", None), torch.Tensor)
        if weightless and getattr(cls, "owns_connection", True):  # rate_modulate only reads the target
            raise ConfigError(f"connection '{cname}' has no weights for a local rule to learn", key=f"{key}.connection")
        rule = LearningRule.build(spec, key=key, connection=conn, source=network.groups[conn.source],
                                  target=network.groups[conn.target], dt=dt)
        rule.groups = network.groups
        group = getattr(getattr(rule, "reward_source", None), "group", None)
        if group is not None and group not in network.groups:
            raise ConfigError(f"no group '{group}'. Groups: {', '.join(network.groups)}", key=f"{key}.reward.group")
        local[name] = learners[name] = rule
    network.learners = local
    extra = [(name, r) for name, r in local.items() if getattr(r, "needs_gradient_learner", False)]
    if extra and gradient_name is None:
        name = extra[0][0]
        raise ConfigError(f"{extra[0][1].registered_name} adds a term to a gradient learner's loss: add one beside "
                          "it in a mapping of named learners (e.g. surrogate_bptt, stca, stbp)",
                          key="model.learner" if single else f"model.learner.{name}")
    if gradient_name is not None:
        learners[gradient_name].extra_losses = [r for _, r in extra]
    owned = {id(r.connection) for r in local.values() if getattr(r, "owns_connection", True)}
    for cname, conn in network.connections.items():
        conn.set_trainable(False)
    if gradient_name is not None:
        grad = learners[gradient_name]
        names = grad.connections if grad.connections is not None else list(network.connections)
        for cname in names:
            key = f"model.learner{'' if single else '.' + gradient_name}.connections"
            if cname not in network.connections:
                raise ConfigError(f"no connection '{cname}'. Connections: {', '.join(network.connections)}", key=key)
            conn = network.connections[cname]
            if id(conn) in owned:
                if grad.connections is not None:
                    raise ConfigError(f"connection '{cname}' is learned by a local rule", key=key)
                continue
            conn.set_trainable(conn.learn)
    return learners
