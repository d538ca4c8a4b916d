"""SPAIC's ``rate_modulate`` (``Rate_Modulate``, spaic/Learning/Rate_Modulation.py): a firing-rate
penalty added to the gradient learner's loss."""

from __future__ import annotations

import torch

from snnrun.components.learning.base import LearningRule
from snnrun.errors import ConfigError


@LearningRule.register("rate_modulate", source="spaic")
class RateModulate(LearningRule):
    """Spike-rate modulation (SPAIC's ``Rate_Modulate``): pulls the spike counts of the
    connection's target group towards ``m_r`` by adding to the gradient learner's loss::

        n_bj   = sum_t s_bj(t)                      the presentation's spike counts (B, n_post)
        L_rate = alpha || n - m_r ||_2              Frobenius norm over samples and neurons

    so the gradient learner (surrogate_bptt, stca, stbp ... beside it in ``model.learner``) trains
    the network's weights on loss + L_rate; this rule changes no weight itself, and the connection
    stays trained by the gradient learner. Default alpha 0.001 (SPAIC); ``m_r`` (spikes per
    presentation, a number or one per neuron) has no default, as in SPAIC. The counts are taken
    step by step while the gradient learner trains (the model then runs step by step: same numbers).
    """

    owns_connection = False  # the gradient learner keeps training the connection
    needs_gradient_learner = True

    def __init__(self, connection, *, m_r: float | list | None = None, alpha: float = 0.001, **kw):
        super().__init__(connection, **kw)
        if m_r is None:
            raise ConfigError("set m_r: the target number of spikes per presentation of each neuron of the "
                              "connection's target group (a number or a list, one per neuron)", key="m_r")
        self.m_r = torch.as_tensor(m_r, dtype=torch.float32)
        if self.m_r.dim() > 1 or (self.m_r.dim() == 1 and self.target is not None
                                  and self.m_r.numel() != self.target.n):
            raise ConfigError(f"m_r is a number or a list of one number per target neuron "
                              f"({getattr(self.target, 'n', '?')}), got shape {list(self.m_r.shape)}", key="m_r")
        self.alpha = float(alpha)
        if not self.alpha >= 0:
            raise ConfigError(f"alpha must be >= 0, got {alpha}", key="alpha")
        self.counts: torch.Tensor | None = None

    def reset_state(self, batch_size: int) -> None:
        self.counts = None

    def step(self) -> None:
        """Count the target's spikes (with their gradient); no weight change."""
        s = self.target.s.flatten(1)
        self.counts = s if self.counts is None else self.counts + s

    def end_presentation(self) -> None:
        """No weight change at the end of a presentation either."""

    def extra_loss(self) -> torch.Tensor | None:
        """alpha ||n - m_r|| of the presentation just run, or None before one.

        In a data-parallel run each process holds its rows of n: the norm is of the whole batch
        (S = the squared error summed over every rank's rows), and each rank's term is shaped so that
        DDP's gradient average, after the loss scale of its share (``loss_scale``), is the gradient of
        alpha sqrt(S): grad part world / scale alpha S_rank / (2 sqrt S), value alpha sqrt(S)."""
        if self.counts is None:
            return None
        err = self.counts - self.m_r.to(self.counts)
        dp = self.data_parallel
        if dp is None:
            return self.alpha * torch.linalg.vector_norm(err)
        s_rank = (err * err).sum()
        total = dp.all_reduce_(s_rank.detach().clone()).clamp_min(1e-30).sqrt()
        scale = dp.loss_scale()
        grad_part = (dp.world / scale if scale else 0.0) * self.alpha * s_rank / (2 * total)
        return grad_part - grad_part.detach() + self.alpha * total
