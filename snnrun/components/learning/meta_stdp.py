"""SPAIC's ``meta_nearest_online_stdp`` (``Meta_nearest_online_STDP``, spaic/Learning/STDP_Learner.py):
nearest-spike STDP with soft exponential bounds and a homeostatic per-neuron weight mean."""

from __future__ import annotations

import math

import torch

from snnrun.components.learning.base import LearningRule
from snnrun.errors import ConfigError


@LearningRule.register("meta_nearest_online_stdp", source="spaic")
class MetaNearestOnlineSTDP(LearningRule):
    """Nearest-spike online STDP whose postsynaptic weight means are held by a homeostatic rule
    (SPAIC's ``Meta_nearest_online_STDP``). With w (n_pre, n_post), per step::

        x_pre  <- x_pre  exp(-dt / tc_pre)  [s_pre  = 0] + s_pre      nearest traces; x_pre reset per
        x_post <- x_post exp(-dt / tc_post) [s_post = 0] + s_post     presentation, x_post kept (SPAIC's [stay])
        dw_ij   = nu_post sum_b x_pre_bi s_post_bj - nu_pre sum_b s_pre_bi x_post_bj
        twice (SPAIC's code repeats the two lines):
            m_j <- m_j - 0.1 nu_pre (mean_b x_post_bj - mean_bk x_post_bk)
            m_j <- m_j mean_k(m0_k) / mean_k(m_k)
        soft_ij = [dw_ij < 0] exp(-0.2 / max(w_ij - w_min, 1e-4)) + [dw_ij > 0] exp(-0.2 / max(w_max - w_ij, 1e-4))
        w_ij   <- w_ij m_j / max(mean_k w_kj, 1e-6) + dw_ij soft_ij

    m (the target mean of neuron j's incoming weights) starts as the weights' means m0 at the first
    update and is kept across presentations (and in checkpoints). Defaults as SPAIC: nu = [Apre,
    Apost] = [1e-4, 1e-2], tc_pre 30 ms and tc_post 200 ms (SPAIC's per-step factors exp(-1/30) and
    exp(-1/200), which are these at dt = 1), w_min 0, w_max 1. ``reduction: mean`` divides the
    sums over the batch by its size.
    """

    reduces_batch = True  # the weight normalisation is not linear in the batch: ranks sum first

    def __init__(self, connection, *, tc_pre: float = 30.0, tc_post: float = 200.0, w_min: float = 0.0,
                 w_max: float = 1.0, nu=(1e-4, 1e-2), **kw):
        super().__init__(connection, nu=nu, **kw)
        if not hasattr(connection, "w") or connection.w.dim() != 2:
            raise ConfigError("meta_nearest_online_stdp learns dense connections (a 2-D weight matrix)",
                              key="connection")
        for k, v in (("tc_pre", tc_pre), ("tc_post", tc_post)):
            if not float(v) > 0:
                raise ConfigError(f"must be > 0 ms, got {v}", key=k)
        if not float(w_min) < float(w_max):
            raise ConfigError(f"w_min ({w_min}) must be below w_max ({w_max})", key="w_min")
        self.decay_pre, self.decay_post = math.exp(-self.dt / float(tc_pre)), math.exp(-self.dt / float(tc_post))
        self.w_min, self.w_max = float(w_min), float(w_max)
        self.x_pre = self.x_post = None
        self.mean_target: torch.Tensor | None = None  # m (n_post,)
        self.mean_of_means: torch.Tensor | None = None  # mean_k m0_k

    def reset_state(self, batch_size: int) -> None:
        self.x_pre = None  # x_post outlives the presentation (a new batch size starts it afresh)

    @staticmethod
    def nearest(x: torch.Tensor | None, s: torch.Tensor, decay: float) -> torch.Tensor:
        if x is None or x.shape != s.shape:
            x = torch.zeros_like(s)
        return decay * x * (s <= 0) + s

    def update(self) -> None:
        s_pre, s_post = self.source.s.flatten(1), self.target.s.flatten(1)
        w = self.connection.w
        if self.mean_target is None:
            self.mean_target = w.mean(0).detach().clone()
            self.mean_of_means = self.mean_target.mean()
        self.x_pre = self.nearest(self.x_pre, s_pre, self.decay_pre)
        self.x_post = self.nearest(self.x_post, s_post, self.decay_post)
        b = self.batch_size(s_pre.shape[0])
        P = self.batch_total(self.x_pre.t() @ s_post)
        D = self.batch_total(s_pre.t() @ self.x_post)
        if self.reduction == "mean":
            P, D = P / b, D / b
        dw = self.nu[1] * P - self.nu[0] * D
        post_mean = self.batch_total(self.x_post.sum(0)) / max(b, 1)  # mean over the batch, per neuron
        for _ in range(2):
            self.mean_target = self.mean_target - 0.1 * self.nu[0] * (post_mean - post_mean.mean())
            self.mean_target = self.mean_target * self.mean_of_means / self.mean_target.mean()
        soft = ((dw < 0) * torch.exp(-0.2 / (w - self.w_min).clamp_min(1e-4))
                + (dw > 0) * torch.exp(-0.2 / (self.w_max - w).clamp_min(1e-4)))
        w.copy_(w * self.mean_target / w.mean(0).clamp_min(1e-6) + dw * soft)

    def state_dict(self) -> dict:
        """What outlives a presentation: the target means and x_post (a resumed run continues them)."""
        if self.mean_target is None:
            return {}
        state = {"mean_target": self.mean_target.detach().cpu().clone(),
                 "mean_of_means": self.mean_of_means.detach().cpu().clone()}
        if self.x_post is not None:
            state["x_post"] = self.x_post.detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        if state.get("mean_target") is not None:
            dev = self.connection.w.device
            self.mean_target = state["mean_target"].to(dev)
            self.mean_of_means = state["mean_of_means"].to(dev)
            self.x_post = state["x_post"].to(dev) if state.get("x_post") is not None else None
