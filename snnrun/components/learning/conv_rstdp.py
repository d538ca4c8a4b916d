"""Reward-modulated STDP for conv2d connections (SPAIC's ``conv2d_rstdp``, spaic/Learning/Conv_RSTDP.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnrun.components.learning.base import LearningRule
from snnrun.components.learning.reward import MSTDP
from snnrun.errors import ConfigError


@LearningRule.register("conv2d_rstdp", source="spaic")
class Conv2dRSTDP(MSTDP):
    """SPAIC's ``Conv2d_RSTDP``: RSTDP (Florian 2007) on a shared conv kernel, summed over positions.

    Traces of the input map and the output map (reset every presentation)::

        p_plus  <- p_plus  exp(-dt / tc_plus)  + a_plus  s_pre      (B, C, H, W)
        p_minus <- p_minus exp(-dt / tc_minus) + a_minus s_post     (B, O, H', W')
        zeta_b[o, c, u, v] = sum_p s_post[b, o, p] p_plus[b, c, p + (u, v)]
                           + sum_p p_minus[b, o, p] s_pre[b, c, p + (u, v)]
        dw = nu sum_b r_b zeta_b

    (p runs over output positions; the input patch follows the connection's stride and padding:
    SPAIC's im2col of the pre trace). The reward is one number per sample (SPAIC asserts a global
    reward: there r is one number and dw = nu r sum_b zeta_b, the same when all r_b are equal).
    Defaults as SPAIC: nu (``lr``) 0.1, tc 20 ms, a_plus 1, a_minus -1. ``reduction: mean`` divides by B.
    """

    def __init__(self, connection, *, nu: float | list = 0.1, **kw):
        super().__init__(connection, nu=nu, **kw)

    def check_connection(self, connection) -> None:
        if not hasattr(connection, "w") or connection.w.dim() != 4:
            raise ConfigError("conv2d_rstdp learns conv2d connections (a 4-D kernel)", key="connection")

    def kernel_sum(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """sum_{b, p} post[b, o, p] pre[b, c, p + (u, v)] as a kernel-shaped tensor."""
        c = self.connection
        cols = F.unfold(pre, c.w.shape[2:], padding=c.padding, stride=c.stride)  # (B, C k k, L)
        return torch.einsum("bol,bkl->ok", post.flatten(2), cols).view_as(c.w)

    def update(self) -> None:
        b = self.source.s.shape[0]
        c = self.connection
        s_pre = self.source.s.reshape(b, *c.source_shape)
        s_post = self.target.s.reshape(b, *c.target_shape)
        p_plus, p_minus = self.traces(s_pre, s_post)
        r = self.current_reward(b)
        if r is None:
            return
        if r.shape[1] != 1:
            raise ConfigError(f"conv2d_rstdp takes one reward per sample (SPAIC: a global reward), got {r.shape[1]} "
                              "per sample: use scope: sample on label_match", key="reward")
        r = r.reshape(b, 1, 1, 1)
        dw = self.kernel_sum(s_post * r, p_plus) + self.kernel_sum(p_minus * r, s_pre)
        c.w.add_(dw / b if self.reduction == "mean" else dw, alpha=self.lr)
