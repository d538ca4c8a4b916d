"""Learning rules, registered by name: ``LearningRule.registry.names()``."""

from snnrun.components.learning.base import LearningRule
from snnrun.components.learning.stdp import PostPreSTDP
from snnrun.components.learning import gradient  # noqa: F401  (surrogate_bptt, stbp, sbp, stca)
from snnrun.components.learning import reward  # noqa: F401  (mstdp, mstdpet, reward_switch_stdp, tempotron)

__all__ = ["LearningRule", "PostPreSTDP"]
