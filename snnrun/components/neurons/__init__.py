"""Neuron models, registered by name: ``NeuronModel.registry.names()``."""

from snnrun.components.neurons.base import Input, NeuronModel
from snnrun.components.neurons.lif import LIFNodes
from snnrun.components.neurons.adaptive import AdaptiveLIFNodes, DiehlCookNodes
from snnrun.components.neurons import integrate_fire, izhikevich, srm, hh, adex, glif, rate, integer  # noqa: F401  (zoo: registration)
from snnrun.components.neurons.trainable import IFNode, LIFNode, LeakyIntegrator, ParametricLIFNode, TrainableNode  # noqa: F401
from snnrun.components.neurons import clif, exp_euler, nir_nodes  # noqa: F401  (trainable zoo: registration)
from snnrun.components.neurons import spaic_if, spaic_lif, spikeprop, spaic_stdp_lif, darwin  # noqa: F401  (SPAIC's models)

__all__ = ["NeuronModel", "Input", "LIFNodes", "AdaptiveLIFNodes", "DiehlCookNodes"]
