"""SPAIC's Backprop-RSTDP rules (spaic/Learning/Backprop_RSTDP.py): reward-modulated STDP whose
reward vector is fed back to the postsynaptic neurons through a fixed feedback matrix, with a
homeostatic term. ``bp_rstdp`` (``Backprop_RSTDP``) and ``bp_rstdpet`` (``Backprop_RSTDPET``, with an
eligibility trace).

The reward is a vector per sample, r_b of length n_r (a reward source returning (B, n_r), e.g.
``label_match`` with ``scope: neuron`` on the readout group: ``reward: {type: label_match,
n_classes: 10, group: Y}``); the feedback matrix G (n_post, n_r) maps it onto this connection's
postsynaptic neurons, rho_b = G r_b. G is fixed: the identity when n_r = n_post (SPAIC: when both are
10), ones when n_r = 1 (one reward per sample reaches every neuron), otherwise SPAIC's random
feedback clip(g N(0, 1), reward_weight_min, reward_weight_max) with g = 0.2 (bp_rstdp) or 1
(bp_rstdpet), drawn once with ``seed`` and kept in checkpoints.
"""

from __future__ import annotations

import math

import torch

from snnrun.components.learning.base import LearningRule
from snnrun.components.learning.reward import RewardModulated
from snnrun.errors import ConfigError


class BackpropRewardBase(RewardModulated):
    """Shared parts: SPAIC's low-pass spike traces x <- beta x + (1 - beta) s (beta = exp(-dt / tau),
    reset every presentation), the feedback matrix, and the reward fed back per sample."""

    feedback_gain = 0.2
    reduces_batch = True  # products of batch means: data-parallel ranks sum the batch terms first

    def __init__(self, connection, *, nu: float | list = 0.1, tau_pre: float = 5.0, tau_post: float = 12.0,
                 a_plus: float = 1.0, a_minus: float = -0.4, hs_rate: float = 0.01,
                 reward_weight_min: float = -10.0, reward_weight_max: float = 10.0, seed: int = 0,
                 reduction: str = "mean", **kw):
        if reduction != "mean":
            raise ConfigError(f"{self.registered_name} averages over the batch (SPAIC's means of the eligibility and "
                              f"the reward); reduction: mean, got {reduction!r}", key="reduction")
        super().__init__(connection, nu=nu, reduction=reduction, **kw)
        for k, v in (("tau_pre", tau_pre), ("tau_post", tau_post)):
            if not float(v) > 0:
                raise ConfigError(f"must be > 0 ms, got {v}", key=k)
        if not float(reward_weight_min) <= float(reward_weight_max):
            raise ConfigError(f"reward_weight_min ({reward_weight_min}) > reward_weight_max ({reward_weight_max})",
                              key="reward_weight_min")
        self.beta_pre, self.beta_post = math.exp(-self.dt / float(tau_pre)), math.exp(-self.dt / float(tau_post))
        self.a_plus, self.a_minus, self.hs_rate = float(a_plus), float(a_minus), float(hs_rate)
        self.g_min, self.g_max, self.seed = float(reward_weight_min), float(reward_weight_max), int(seed)
        self.feedback: torch.Tensor | None = None  # G (n_post, n_r)
        self.x_pre = self.x_post = None

    def reset_state(self, batch_size: int) -> None:
        self.x_pre = self.x_post = None

    def traces(self, s_pre: torch.Tensor, s_post: torch.Tensor):
        if self.x_pre is None or self.x_pre.shape != s_pre.shape:
            self.x_pre, self.x_post = torch.zeros_like(s_pre), torch.zeros_like(s_post)
        self.x_pre = self.beta_pre * self.x_pre + (1 - self.beta_pre) * s_pre
        self.x_post = self.beta_post * self.x_post + (1 - self.beta_post) * s_post
        return self.x_pre, self.x_post

    def feedback_matrix(self, n_post: int, n_r: int, like: torch.Tensor) -> torch.Tensor:
        G = self.feedback
        if G is None or G.shape != (n_post, n_r):
            if n_r == n_post:
                G = torch.eye(n_post)
            elif n_r == 1:
                G = torch.ones(n_post, 1)
            else:
                gen = torch.Generator().manual_seed(self.seed)
                G = (self.feedback_gain * torch.randn(n_post, n_r, generator=gen)).clamp(self.g_min, self.g_max)
            self.feedback = G
        if self.feedback.device != like.device or self.feedback.dtype != like.dtype:
            self.feedback = self.feedback.to(like.device, like.dtype)
        return self.feedback

    def fed_back_reward(self, batch: int, n_post: int) -> torch.Tensor | None:
        """rho (B, n_post) = r G^T, or None without a reward."""
        r = self.current_reward(batch)
        if r is None:
            return None
        r = r.expand(batch, r.shape[1])
        return r @ self.feedback_matrix(n_post, r.shape[1], r).t()

    def batch_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Mean over the whole batch of a per-sample sum ``t`` (summed over the ranks' rows)."""
        return self.batch_total(t) / max(self.batch_size(self.source.s.shape[0]), 1)

    def state_dict(self) -> dict:
        return {} if self.feedback is None else {"feedback": self.feedback.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("feedback") is not None:
            self.feedback = state["feedback"].to(self.connection.w.device, self.connection.w.dtype)


@LearningRule.register("bp_rstdp", source="spaic")
class BackpropRSTDP(BackpropRewardBase):
    """SPAIC's ``bp_rstdp`` (``Backprop_RSTDP``): reward-modulated STDP with a fed-back reward vector
    and a homeostatic term. Per step, means over the batch b::

        x_pre  <- beta_pre  x_pre  + (1 - beta_pre)  s_pre       beta = exp(-dt / tau), tau_pre 5, tau_post 12 ms
        x_post <- beta_post x_post + (1 - beta_post) s_post
        rho_b   = G r_b                                          (see the module docstring)
        E_ij    = mean_b [a_plus x_pre_bi s_post_bj + a_minus s_pre_bi x_post_bj]
        H_ij    = mean_b [x_pre_bi (x_post_bj - 0.1)]
        dw_ij   = nu mean_b(rho_bj) E_ij - hs_rate H_ij

    Defaults as SPAIC: nu (``lr``) 0.1, hs_rate (``hs_r``) 0.01, a_plus 1, a_minus -0.4. As SPAIC, the
    batch-mean reward multiplies the batch-mean eligibility (a product of means), and the homeostatic
    term applies at every step, rewarded or not (a step without any reward skips the rule).
    """

    def update(self) -> None:
        s_pre, s_post = self.spikes()
        x_pre, x_post = self.traces(s_pre, s_post)
        rho = self.fed_back_reward(s_pre.shape[0], s_post.shape[1])
        if rho is None:
            return
        E = self.batch_mean(self.a_plus * x_pre.t() @ s_post + self.a_minus * s_pre.t() @ x_post)
        H = self.batch_mean(x_pre.t() @ (x_post - 0.1))
        rho_mean = self.batch_mean(rho.sum(0))
        self.connection.w.add_(self.lr * rho_mean * E - self.hs_rate * H)


@LearningRule.register("bp_rstdpet", source="spaic")
class BackpropRSTDPET(BackpropRewardBase):
    """SPAIC's ``Backprop_RSTDPET``: bp_rstdp with an eligibility trace of the potentiation term and a
    different homeostatic term. Per step, means over the batch b::

        x_pre, x_post as bp_rstdp (tau_pre 4, tau_post 10 ms)
        e_ij  <- exp(-dt / tau_et) e_ij + mean_b [a_plus x_pre_bi s_post_bj]        tau_et 5 ms
        H_ij   = mean_b [s_pre_bi x_post_bj (x_post_bj - 0.2)]
        dw_ij  = nu mean_b(rho_bj) e_ij - hs_rate H_ij

    Defaults as SPAIC: nu 0.1, hs_rate 0.01, a_plus 1 (SPAIC's a_minus -0.5 enters no equation),
    feedback gain 1. e is reset every presentation. SPAIC registers the name 'bp_rstdpet' with the
    class Backprop_RSTDP by mistake (and its build passes a malformed operation), so the name there
    runs bp_rstdp; this is the Backprop_RSTDPET class's equations under the name.
    """

    feedback_gain = 1.0

    def __init__(self, connection, *, tau_pre: float = 4.0, tau_post: float = 10.0, tau_et: float = 5.0,
                 a_minus: float = -0.5, **kw):
        super().__init__(connection, tau_pre=tau_pre, tau_post=tau_post, a_minus=a_minus, **kw)
        if not float(tau_et) > 0:
            raise ConfigError(f"must be > 0 ms, got {tau_et}", key="tau_et")
        self.beta_et = math.exp(-self.dt / float(tau_et))
        self.e: torch.Tensor | None = None

    def reset_state(self, batch_size: int) -> None:
        super().reset_state(batch_size)
        self.e = None

    def update(self) -> None:
        s_pre, s_post = self.spikes()
        x_pre, x_post = self.traces(s_pre, s_post)
        potentiation = self.batch_mean(self.a_plus * x_pre.t() @ s_post)
        self.e = potentiation if self.e is None else self.beta_et * self.e + potentiation
        rho = self.fed_back_reward(s_pre.shape[0], s_post.shape[1])
        if rho is None:
            return
        H = self.batch_mean(s_pre.t() @ (x_post * (x_post - 0.2)))
        rho_mean = self.batch_mean(rho.sum(0))
        self.connection.w.add_(self.lr * rho_mean * self.e - self.hs_rate * H)
