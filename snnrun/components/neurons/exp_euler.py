"""brainstate's trainable LIF family, integrated by exponential Euler: ``exp_euler_lif``
(brainstate.lif), ``lif_ref`` (brainstate.lifref), ``alif`` (brainstate.alif) and brainstate.if.

The equations are those of brainstate.nn.IF / LIF / LIFRef / ALIF as brainstate shipped them up
to 0.1.x; brainstate 0.2.0 moved these neuron classes out to BrainPy (brainpy/_neuron.py,
``brainpy.state``), with the same update rules and defaults.
"""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.trainable import TrainableNode


@NeuronModel.register("exp_euler_lif", "brainstate.lif", source="brainstate")
class ExpEulerLIFNode(TrainableNode):
    """LIF integrated by exponential Euler (brainstate's ``LIF``, now brainpy/_neuron.py class LIF):
    tau v' = -(v - v_rest) + R I.

    Each step, for the input I = x held over dt (exact for piecewise-constant input)::

        v <- v_rest + R I + (v - v_rest - R I) exp(-dt / tau)
        s  = H((v - v_threshold) / (v_threshold - v_reset))      surrogate backward
        spk_reset soft:  v <- v - (v_threshold - v_reset) s
        spk_reset hard:  v <- v - (stop_grad(v) - v_reset) s      value v_reset, no gradient
                                                                 through the reset's v term

    brainstate applies the reset at the start of the next step; the spikes are the same. Defaults
    (brainstate): tau=5 ms, R=1, v_threshold=1, v_reset=0, v_rest=0, surrogate relu_grad; v
    starts at 0 (brainstate's V_initializer), whatever v_rest is.
    """

    def __init__(self, n=1, *, tau: float = 5.0, r: float = 1.0, v_rest: float = 0.0,
                 spk_reset: str = "soft", surrogate="relu_grad", v_reset: float = 0.0, **kw):
        if spk_reset not in ("soft", "hard"):
            raise ConfigError(f"spk_reset must be 'soft' or 'hard', got {spk_reset!r}", key="spk_reset")
        if v_reset is None:
            raise ConfigError("v_reset must be a number here; choose the reset with spk_reset: soft|hard",
                              key="v_reset")
        super().__init__(n, surrogate=surrogate, v_reset=v_reset, **kw)
        if not tau > 0:
            raise ConfigError(f"tau must be > 0 ms, got {tau}", key="tau")
        if self.v_threshold == self.v_reset:
            raise ConfigError("v_threshold and v_reset must differ (spikes are scaled by their gap)",
                              key="v_threshold")
        self.tau, self.r, self.v_rest, self.spk_reset = float(tau), float(r), float(v_rest), spk_reset
        self.decay = math.exp(-self.dt / self.tau)

    @property
    def v_init(self) -> float:
        return 0.0

    def neuronal_charge(self, x: torch.Tensor) -> None:
        target = self.v_rest + self.r * x
        self.v = target + (self.v - target) * self.decay

    def neuronal_fire(self) -> torch.Tensor:
        return self.surrogate((self.v - self.threshold()) / (self.v_threshold - self.v_reset))

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        s = self.reset_spike(spike)
        if self.spk_reset == "soft":
            self.v = self.v - (self.v_threshold - self.v_reset) * s
        else:
            self.v = self.v - (self.v.detach() - self.v_reset) * s

    def forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor:
        # exp_euler_lif and alif (not subclasses that change the equations, as lif_ref) run T
        # steps through snnrun.engine.kernels.alif_multistep: one Triton kernel per direction on CUDA
        fused = self.fused_forward_multi(x_seq) if type(self) in (ExpEulerLIFNode, ALIFNode) else None
        return super().forward_multi(x_seq) if fused is None else fused

    def fused_forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor | None:
        """T steps through the fused kernels where they compute exactly this node's equations (a
        sigmoid, atan or relu_grad surrogate, no v recording, no traces); None otherwise."""
        from snnrun.engine.kernels.alif_multistep import SURROGATES, alif_multistep

        kind = getattr(self.surrogate, "registered_name", None)
        params = self.surrogate.params()
        if kind not in SURROGATES or len(params) != (2 if kind == "relu_grad" else 1) or self.store_v_seq \
                or self.traces or self.sum_input:
            return None
        self.ensure_state(x_seq[0])
        adapt = isinstance(self, ALIFNode)
        spikes, self.v, a = alif_multistep(
            x_seq, self.v, self.a if adapt else torch.zeros_like(self.v), tau=self.tau, r=self.r,
            v_rest=self.v_rest, v_th=self.v_threshold, v_reset=self.v_reset, spk_reset=self.spk_reset,
            tau_a=self.tau_a if adapt else None, beta=self.beta if adapt else 0.0, dt=self.dt,
            detach_reset=self.detach_reset, surrogate=kind, alpha=params[0],
            width=params[1] if kind == "relu_grad" else 1.0)
        if adapt:
            self.a = a
        self.s = spikes[-1]
        return spikes


@NeuronModel.register("lif_ref", "brainstate.lifref", source="brainstate")
class LIFRefNode(ExpEulerLIFNode):
    """LIF with an absolute refractory period kept by the last spike time (brainstate's ``LIFRef``,
    now brainpy/_neuron.py class LIFRef).

    As ``exp_euler_lif``, but while the time since the last step with v >= v_threshold is below
    tau_ref the membrane is held (no integration) and the neuron is silent. Time is counted in
    steps (brainstate: t - t_last < tau_ref with t = k dt), so a neuron that spiked at step k is
    held for the steps k + j, 0 < j < tau_ref / dt, at any dt (a running sum t += dt would drift
    by a step at dt = 0.1). With constant input the inter-spike interval is the LIF's plus the
    refractory steps. Defaults: tau=5 ms, tau_ref=5 ms.
    """

    def __init__(self, n=1, *, tau_ref: float = 5.0, **kw):
        super().__init__(n, **kw)
        if tau_ref < 0:
            raise ConfigError(f"tau_ref must be >= 0 ms, got {tau_ref}", key="tau_ref")
        self.tau_ref = float(tau_ref)
        # held while (k - k_last) dt < tau_ref, i.e. k - k_last < ref_steps (1e-9: tau_ref / dt
        # that is a whole number up to rounding, e.g. 0.3 / 0.1, counts as that number)
        self.ref_steps = math.ceil(self.tau_ref / self.dt - 1e-9)

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.steps_since_spike = self.state_tensor(float(2 ** 30))

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.steps_since_spike = self.steps_since_spike + 1
        self.held = self.steps_since_spike < self.ref_steps
        before = self.v
        super().neuronal_charge(x)
        self.v = torch.where(self.held, before, self.v)

    def neuronal_fire(self) -> torch.Tensor:
        # a refractory neuron is silent (brainstate would fire again if a soft reset left v
        # above threshold)
        spike = super().neuronal_fire() * (~self.held).to(self.v.dtype)
        self.steps_since_spike = self.steps_since_spike.masked_fill(spike.detach() > 0, 0.0)
        return spike


@NeuronModel.register("alif", source="brainstate")
class ALIFNode(ExpEulerLIFNode):
    """Adaptive LIF (brainstate's ``ALIF``, now brainpy/_neuron.py class ALIF): the threshold rises
    by beta per unit of adaptation a.

    As ``exp_euler_lif`` with the effective threshold v_threshold + beta a and::

        a <- a exp(-dt / tau_a) + s          (each spike adds 1; a decays with tau_a)

    Under constant suprathreshold input the rate falls as a builds up (spike-frequency
    adaptation). Defaults: tau=5 ms, tau_a=100 ms, beta=0.1.
    """

    def __init__(self, n=1, *, tau_a: float = 100.0, beta: float = 0.1, **kw):
        super().__init__(n, **kw)
        if not tau_a > 0:
            raise ConfigError(f"tau_a must be > 0 ms, got {tau_a}", key="tau_a")
        self.tau_a, self.beta = float(tau_a), float(beta)
        self.a_decay = math.exp(-self.dt / self.tau_a)

    def reset_dynamics(self) -> None:
        super().reset_dynamics()
        self.a = self.state_tensor(0.0)

    def threshold(self):
        return self.v_threshold + self.beta * self.a

    def neuronal_charge(self, x: torch.Tensor) -> None:
        super().neuronal_charge(x)
        self.a = self.a * self.a_decay

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        super().neuronal_reset(spike)
        self.a = self.a + spike


@NeuronModel.register("brainstate.if", source="brainstate")
class BrainstateIFNode(ExpEulerLIFNode):
    """brainstate's ``IF`` (now brainpy/_neuron.py class IF): tau v' = -v + R I by exponential Euler.

    Despite the name it leaks: ``exp_euler_lif`` with v_rest = v_reset = 0.

    Each step, for the input I = x held over dt::

        v <- R I + (v - R I) exp(-dt / tau)
        s  = H((v - v_threshold) / v_threshold)         surrogate backward
        soft: v <- v - v_threshold s;   hard: v <- v - stop_grad(v) s  (back to 0)

    Defaults (brainstate): tau = 5 ms, R = 1, v_threshold = 1, surrogate relu_grad, soft reset;
    v starts at 0.
    """

    def __init__(self, n=1, **kw):
        for fixed in ("v_rest", "v_reset"):
            if fixed in kw:
                raise ConfigError(f"brainstate.if has no {fixed} (it is 0); use brainstate.lif for one",
                                  key=fixed)
        super().__init__(n, **kw)
