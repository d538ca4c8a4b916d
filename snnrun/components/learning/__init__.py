"""Learning rules, registered by name: ``LearningRule.registry.names()``."""

from snnrun.components.learning.base import LearningRule
from snnrun.components.learning.stdp import PostPreSTDP
from snnrun.components.learning import gradient  # noqa: F401  (surrogate_bptt, stbp, sbp, stca)
from snnrun.components.learning import reward  # noqa: F401  (mstdp, rstdp, mstdpet, reward_switch_stdp, tempotron)
from snnrun.components.learning import backprop_rstdp  # noqa: F401  (bp_rstdp, bp_rstdpet)
from snnrun.components.learning import conv_rstdp  # noqa: F401  (conv2d_rstdp)
from snnrun.components.learning import meta_stdp  # noqa: F401  (meta_nearest_online_stdp)
from snnrun.components.learning import rate_modulate  # noqa: F401  (rate_modulate)

__all__ = ["LearningRule", "PostPreSTDP"]
