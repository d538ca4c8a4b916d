"""Fused multi-step neuron kernels (Triton on CUDA) with bit-compatible PyTorch fallbacks."""
