"""snnrun: config-driven experiments with spiking neural networks on PyTorch."""

__version__ = "0.1.0"
