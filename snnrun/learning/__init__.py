"""Learning rules, registered by name: ``LearningRule.registry.names()``."""

from snnrun.learning.base import LearningRule
from snnrun.learning.stdp import PostPreSTDP

__all__ = ["LearningRule", "PostPreSTDP"]
