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

    ``reduction: owner`` is for large batches of competitive networks (Diehl & Cook): summed
    over a batch, every sample that drives the same strong neuron pushes its weights towards
    a different digit, and the batch learns blurred, shared features instead of the distinct
    ones that sequential presentation gives. With ``owner``, postsynaptic neuron j learns
    only from the first sample of the batch that made it fire during this presentation
    (ties: the lowest sample index); other samples leave its weights alone, as if j had
    already been taken by that sample. Both terms of j's column are masked.
    """

    supports_owner = True

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

    def reset_state(self, batch_size: int) -> None:
        self.owner = None  # (n_post,) sample index that owns each neuron, -1: none yet

    def owner_mask(self, s_post: torch.Tensor) -> torch.Tensor:
        """(B, n_post) 1 where sample b owns neuron j; claims the neurons that fired first now."""
        b = s_post.shape[0]
        if getattr(self, "owner", None) is None:
            self.owner = torch.full((s_post.shape[1],), -1, dtype=torch.long, device=s_post.device)
        fired = s_post.amax(0) > 0
        first = s_post.argmax(0)  # the first sample index among the maxima
        self.owner = torch.where(fired & (self.owner < 0), first, self.owner)
        samples = torch.arange(b, device=s_post.device)[:, None]
        return (samples == self.owner[None, :]).to(s_post.dtype)

    def update(self) -> None:
        b = self.source.s.shape[0]
        s_pre, x_pre = self.source.s.reshape(b, -1), self.source.x.reshape(b, -1)
        s_post, x_post = self.target.s.reshape(b, -1), self.target.x.reshape(b, -1)
        if self.reduction == "owner":
            mask = self.owner_mask(s_post)
            s_post, x_post = s_post * mask, x_post * mask
        scale = 1.0 / b if self.reduction == "mean" else 1.0
        w = self.connection.w
        # sum over the batch of outer products = one matmul (no per-sample matrices)
        if self.nu[0]:
            w.addmm_(s_pre.t(), x_post, alpha=-self.nu[0] * scale)
        if self.nu[1]:
            w.addmm_(x_pre.t(), s_post, alpha=self.nu[1] * scale)
