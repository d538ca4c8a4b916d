"""Spike-timing-dependent plasticity rules driven by pre- and postsynaptic traces."""

from __future__ import annotations

import torch

from snnrun.errors import ConfigError
from snnrun.learning.base import LearningRule


@LearningRule.register("post_pre", "stdp")
class PostPreSTDP(LearningRule):
    """Pair-based STDP from traces (BindsNET's ``PostPre``), for dense connections.

    At every step, with presynaptic spikes s_pre, traces x_pre, and likewise for post::

        dw_ij = - nu_pre  * s_pre_i(t)  * x_post_j(t)     depression: pre after post
                + nu_post * x_pre_i(t)  * s_post_j(t)     potentiation: post after pre

    summed (or averaged, ``reduction``) over the batch, then clamped to [wmin, wmax].
    Both groups need ``traces: true``.
    """

    def __init__(self, connection, **kw):
        super().__init__(connection, **kw)
        for role, group in (("source", self.source), ("target", self.target)):
            if group is not None and not group.traces:
                raise ConfigError(f"post_pre needs spike traces on its {role} group "
                                  f"'{getattr(connection, role)}': set traces: true there",
                                  key="connection")
        if not hasattr(connection, "w") or connection.w.dim() != 2:
            raise ConfigError("post_pre learns dense connections (a 2-D weight matrix)",
                              key="connection")

    def update(self) -> None:
        b = self.source.s.shape[0]
        s_pre, x_pre = self.source.s.reshape(b, -1), self.source.x.reshape(b, -1)
        s_post, x_post = self.target.s.reshape(b, -1), self.target.x.reshape(b, -1)
        scale = 1.0 if self.reduction == "sum" else 1.0 / b
        w = self.connection.w
        # sum over the batch of outer products = one matmul (no per-sample matrices)
        if self.nu[0]:
            w.addmm_(s_pre.t(), x_post, alpha=-self.nu[0] * scale)
        if self.nu[1]:
            w.addmm_(x_pre.t(), s_post, alpha=self.nu[1] * scale)
