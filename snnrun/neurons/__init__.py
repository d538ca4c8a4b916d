"""Neuron models, registered by name: ``NeuronModel.registry.names()``."""

from snnrun.neurons.base import Input, NeuronModel
from snnrun.neurons.lif import LIFNodes
from snnrun.neurons.adaptive import AdaptiveLIFNodes, DiehlCookNodes
from snnrun.neurons import integrate_fire, izhikevich, srm, hh, adex, glif, rate, integer  # noqa: F401  (zoo: registration)
from snnrun.neurons.trainable import IFNode, LIFNode, LeakyIntegrator, ParametricLIFNode, TrainableNode  # noqa: F401
from snnrun.neurons import clif, exp_euler  # noqa: F401  (trainable zoo: registration)

__all__ = ["NeuronModel", "Input", "LIFNodes", "AdaptiveLIFNodes", "DiehlCookNodes"]
