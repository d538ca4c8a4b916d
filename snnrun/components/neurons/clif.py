"""SPAIC's current-based LIF models (spaic/Neuron/Neuron.py, SPAIC 0.6.3): three kernels
(``clif``), its adaptive variant (``aclif``), two kernels (``clif2k``) and two kernels with
trainable decays (``pclif``, class PLIF2kModel); trainable with surrogate gradients (SPAIC trains
them with STCA/STBP). They fire where v > v_threshold, as SPAIC's threshold op."""

from __future__ import annotations

import math

import torch
from torch import nn

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.integrate_fire import psp_norm
from snnrun.components.neurons.spaic_base import SpaicNode, decay_of


class KernelNode(SpaicNode):
    """State of SPAIC's kernel models: the PSP kernels M and S and the reset kernel E, all 0 at
    the start of a sample, as is v (v = M - S - E)."""

    @property
    def v_init(self) -> float:
        return 0.0

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.m, self.q, self.e = self.state_tensor(0.0), self.state_tensor(0.0), self.state_tensor(0.0)


@NeuronModel.register("clif", source="spaic")
class CLIFNode(KernelNode):
    """Current LIF, 3 kernels: v = M - S - E (SPAIC's ``CLIFModel``).

    Each step, with beta_z = exp(-dt / tau_z)::

        I = V0 x;   M <- beta_p M + I;   S <- beta_q S + I       PSP = M - S
        v = M - S - E;   s = v > v_threshold                     (surrogate backward)
        E <- beta_m E + v_threshold s                            reset kernel, used next step

    V0 = (1 / (b - 1)) b^(b / (b - 1)), b = tau_p / tau_q, scales the PSP kernel
    exp(-t/tau_p) - exp(-t/tau_q) to a peak of 1. ``v_reset`` is not used (the reset is the E
    kernel). Defaults (SPAIC): tau_m=20, tau_p=12, tau_q=8 ms, v_threshold=1.
    """

    def __init__(self, n=1, *, tau_m: float = 20.0, tau_p: float = 12.0, tau_q: float = 8.0, **kw):
        super().__init__(n, **kw)
        self.tau_m, self.tau_p, self.tau_q = float(tau_m), float(tau_p), float(tau_q)
        self.beta_m, self.beta_p, self.beta_q = (decay_of(t, self.dt, k) for k, t in
                                                 (("tau_m", self.tau_m), ("tau_p", self.tau_p), ("tau_q", self.tau_q)))
        self.v0 = psp_norm(self.tau_p, self.tau_q)


    def reset_kernel(self) -> torch.Tensor:
        return self.e

    def neuronal_charge(self, x: torch.Tensor) -> None:
        i = self.v0 * x
        self.m = self.beta_p * self.m + i
        self.q = self.beta_q * self.q + i
        self.v = self.m - self.q - self.reset_kernel()

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        self.e = self.beta_m * self.e + self.v_threshold * self.reset_spike(spike)


@NeuronModel.register("aclif", source="spaic")
class AdaptiveCLIFNode(CLIFNode):
    """Adaptive CLIF (SPAIC's ``aclif``): clif whose reset kernel grows with recent firing.

    On top of ``clif``::

        A <- beta_a A + s[t-1]                   spike history, tau_a = 2000 ms
        v  = M - S - (E + beta_adaptive A)

    so a neuron that fired a lot needs more input to fire again. Defaults: tau_a=2000 ms,
    beta_adaptive=0.1.
    """

    def __init__(self, n=1, *, tau_a: float = 2000.0, beta_adaptive: float = 0.1, **kw):
        super().__init__(n, **kw)
        if not tau_a > 0:
            raise ConfigError(f"tau_a must be > 0 ms, got {tau_a}", key="tau_a")
        self.tau_a, self.beta_adaptive = float(tau_a), float(beta_adaptive)
        self.beta_a = math.exp(-self.dt / self.tau_a)

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.adapt = self.state_tensor(0.0)
        self.last_s = self.state_tensor(0.0)

    def reset_kernel(self) -> torch.Tensor:
        self.adapt = self.beta_a * self.adapt + self.last_s
        return self.e + self.beta_adaptive * self.adapt

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        super().neuronal_reset(spike)
        self.last_s = spike


@NeuronModel.register("spaic.clif2k", source="spaic")
class CLIF2kNode(KernelNode):
    """SPAIC's current LIF with two kernels (class CLIF2kModel): the PSP kernel uses tau_m and tau_s.

    Each step, with beta_z = exp(-dt / tau_z)::

        I = V0 x;   M <- beta_m M + I;   S <- beta_s S + I
        v = M - S - E;   s = v > v_threshold
        E <- beta_m E + v_threshold s

    V0 = (1 / (b - 1)) b^(b / (b - 1)), b = tau_m / tau_s. Defaults (SPAIC 0.6.3): tau_m = 20,
    tau_s = 12 ms, v_threshold = 1. ``v_reset`` is not used (the reset is the E kernel).
    """

    def __init__(self, n=1, *, tau_m: float = 20.0, tau_s: float = 12.0, **kw):
        super().__init__(n, **kw)
        self.tau_m, self.tau_s = float(tau_m), float(tau_s)
        self.beta_m = decay_of(self.tau_m, self.dt, "tau_m")
        self.beta_s = decay_of(self.tau_s, self.dt, "tau_s")
        self.v0 = psp_norm(self.tau_m, self.tau_s)


    def neuronal_charge(self, x: torch.Tensor) -> None:
        i = self.v0 * x
        self.m = self.beta_m * self.m + i
        self.q = self.beta_s * self.q + i
        self.v = self.m - self.q - self.e

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        self.e = self.beta_m * self.e + self.v_threshold * self.reset_spike(spike)


@NeuronModel.register("spaic.pclif", source="spaic")
class ParametricCLIF2kNode(KernelNode):
    """SPAIC's ``pclif`` (class PLIF2kModel): two kernels whose decays are learned parameters.

    Each step, with the learned per-step decays beta_m, beta_s (SPAIC's tau_m, tau_s hold these
    factors directly, defaults 0.9 and 0.6; they do not change with dt)::

        M <- beta_m (M + x);   S <- beta_s (S + x)
        E <- beta_m E + v_threshold s[t-1]
        v  = M - S - E;   s = v > v_threshold

    There is no V0 scaling. The decays are ``nn.Parameter`` s, trained with the weights.
    """

    def __init__(self, n=1, *, beta_m: float = 0.9, beta_s: float = 0.6, **kw):
        super().__init__(n, **kw)
        self.beta_m = nn.Parameter(torch.tensor(float(beta_m)))
        self.beta_s = nn.Parameter(torch.tensor(float(beta_s)))

    def _device_dtype(self):
        return self.beta_m.device, self.beta_m.dtype

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.last_s = self.state_tensor(0.0)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.m = self.beta_m * (self.m + x)
        self.q = self.beta_s * (self.q + x)
        self.e = self.beta_m * self.e + self.v_threshold * self.last_s
        self.v = self.m - self.q - self.e

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        self.last_s = self.reset_spike(spike)
