"""Trainable spiking nodes (SpikingJelly style): dimensionless units, surrogate spikes, BPTT-safe.

Subclassing guide (for new trainable models: ``clif``, ``alif``, ``lif_ref`` ...)
---------------------------------------------------------------------------------
:class:`TrainableNode` is a :class:`~snnrun.components.neurons.base.NeuronModel`, so it registers with
``@NeuronModel.register("name")``, sits in a ``Network`` group, and is listed by ``snnrun list``.
One step is SpikingJelly's three phases::

    step(x):  ensure_state(x)          (B, *shape) state exists for this batch
              neuronal_charge(x)       update self.v (and any other state) from the input
              s = neuronal_fire()      s = surrogate(v - threshold())   (Heaviside forward)
              neuronal_reset(s)        hard:  v = v - s (v - v_reset)
                                       soft:  v = v - s threshold()      (v_reset: null)
              return s

A subclass implements :meth:`neuronal_charge` (required) and may override:

- :meth:`reset_dynamics` to create extra per-sample state (call ``super().reset_dynamics()``
  first; it creates ``self.v`` at :attr:`v_init`); create state with ``self.state_tensor(value)``.
- :meth:`threshold` to return a (possibly state-dependent) threshold, e.g. ALIF's
  ``v_threshold + beta * a``; fire and soft reset use it.
- :meth:`neuronal_fire` / :meth:`neuronal_reset` for other spike or reset rules; the spike the
  reset sees is ``spike.detach()`` when ``detach_reset`` is on (use :meth:`reset_spike`).
- :meth:`forward_multi` for a fused multi-step kernel (the default loops over T with
  :meth:`forward`; any override must give the same outputs and gradients).

Rules that keep the model trainable: never wrap dynamics in ``torch.no_grad``; never modify a
tensor in place that may require grad (write ``self.v = self.v + ...``, not ``self.v += ...``);
keep learnable constants as ``nn.Parameter`` and fixed ones as buffers or floats.

Units and conventions: dimensionless voltages (``v_threshold=1``, ``v_reset=0``), time in steps
of ``dt`` (``dt=1`` gives SpikingJelly's equations exactly). State is per sample and is reset by
``reset_state(batch_size)`` (done by the models for every batch); a node called with a batch of
a new shape resets itself. Single step: ``forward(x (B, *shape)) -> spikes (B, *shape)``; multi
step: ``forward_multi(x_seq (T, B, *shape)) -> spikes (T, B, *shape)``, continuing from the
current state; with ``store_v_seq`` it also keeps ``v_seq`` (T, B, *shape): v after each step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel
from snnrun.components.surrogates import build_surrogate


class TrainableNode(NeuronModel):
    """Base of the surrogate-gradient nodes: charge -> fire (surrogate) -> reset.

    Parameters (SpikingJelly's ``BaseNode`` defaults): ``v_threshold=1.0``; ``v_reset=0.0``
    (hard reset to v_reset) or ``null`` (soft reset: subtract the threshold);
    ``surrogate`` a registered surrogate name or node (default ``sigmoid``, alpha=4);
    ``detach_reset`` stops the gradient through the reset; ``store_v_seq`` records v in
    :meth:`forward_multi`. Plus the :class:`NeuronModel` options (``n``, ``dt``, traces ...).
    """

    def __init__(self, n=1, *, v_threshold: float = 1.0, v_reset: float | None = 0.0,
                 surrogate: Any = "sigmoid", detach_reset: bool = False, store_v_seq: bool = False, **kw):
        super().__init__(n, **kw)
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.surrogate = build_surrogate(surrogate)
        self.detach_reset = bool(detach_reset)
        self.store_v_seq = bool(store_v_seq)
        self.v: torch.Tensor = torch.zeros(0)
        self.v_seq: torch.Tensor | None = None

    @property
    def v_init(self) -> float:
        """Initial membrane potential: v_reset (hard reset) or 0 (soft reset)."""
        return 0.0 if self.v_reset is None else self.v_reset

    # -- state -----------------------------------------------------------------------------
    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.v_init)
        self.v_seq = None

    def ensure_state(self, x: torch.Tensor) -> None:
        """Create the per-sample state if this batch does not match it."""
        if self.v.shape != x.shape:
            if tuple(x.shape[1:]) != self.shape:
                raise ValueError(f"{type(self).__name__} of shape {list(self.shape)} got input of shape "
                                 f"{list(x.shape)}; expected (batch, {', '.join(map(str, self.shape))})")
            self.reset_state(x.shape[0])

    # -- the three phases ------------------------------------------------------------------
    def threshold(self) -> torch.Tensor | float:
        return self.v_threshold

    def neuronal_charge(self, x: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def neuronal_fire(self) -> torch.Tensor:
        return self.surrogate(self.v - self.threshold())

    def reset_spike(self, spike: torch.Tensor) -> torch.Tensor:
        return spike.detach() if self.detach_reset else spike

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        s = self.reset_spike(spike)
        if self.v_reset is None:
            self.v = self.v - s * self.threshold()
        else:
            self.v = self.v - s * (self.v - self.v_reset)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.ensure_state(x)
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        return spike

    def forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Run T steps: ``x_seq (T, B, *shape) -> spikes (T, B, *shape)``, from the current state."""
        spikes, vs = [], []
        for t in range(x_seq.shape[0]):
            spikes.append(self(x_seq[t]))
            if self.store_v_seq:
                vs.append(self.v)
        if self.store_v_seq:
            self.v_seq = torch.stack(vs)
        return torch.stack(spikes)

    def fused_forward_multi(self, x_seq: torch.Tensor, *, tau: float | None, k: float | torch.Tensor = 0.0,
                            decay_input: bool = True) -> torch.Tensor | None:
        """T steps through the fused kernel (:mod:`snnrun.engine.kernels.lif_multistep`: one Triton pass
        per direction on CUDA, a graph-free loop on the CPU) where it computes exactly this node's
        equations — a sigmoid/atan surrogate, no v recording, no traces; None otherwise."""
        kind = getattr(self.surrogate, "registered_name", None)
        if kind not in ("sigmoid", "atan") or len(self.surrogate.params()) != 1 or self.store_v_seq \
                or self.traces or self.sum_input:
            return None
        from snnrun.engine.kernels.lif_multistep import lif_multistep

        self.ensure_state(x_seq[0])
        spikes, self.v = lif_multistep(x_seq, self.v, tau=tau, k=k, v_th=self.v_threshold,
                                       v_reset=self.v_reset, decay_input=decay_input,
                                       detach_reset=self.detach_reset, surrogate=kind,
                                       alpha=self.surrogate.alpha)
        self.s = spikes[-1]
        return spikes

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
                f"detach_reset={self.detach_reset}")


@NeuronModel.register("surrogate_if", "if_node", "snngrow.if", source="snngrow")
class IFNode(TrainableNode):
    """Integrate-and-fire, trainable (snngrow's and SpikingJelly's IFNode): v <- v + x, then fire and reset.

    With v_reset=0 and constant input x < v_threshold a neuron fires every
    ceil(v_threshold / x) steps; with soft reset the count after T steps is floor(T x / v_threshold).
    """

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + x

    def forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor:
        fused = self.fused_forward_multi(x_seq, tau=None) if type(self) is IFNode else None
        return super().forward_multi(x_seq) if fused is None else fused


@NeuronModel.register("surrogate_lif", "lif_node", "snngrow.lif", source="snngrow")
class LIFNode(TrainableNode):
    """Leaky integrate-and-fire, trainable (snngrow's and SpikingJelly's LIFNode), tau in units of dt.

    Charge (k = dt / tau; v_rest = v_reset, or 0 with soft reset)::

        decay_input: true    v <- v + k (x - (v - v_rest))
        decay_input: false   v <- v - k (v - v_rest) + x

    then fire (surrogate) and reset. Defaults tau=2, decay_input=true as in SpikingJelly.
    """

    def __init__(self, n=1, *, tau: float = 2.0, decay_input: bool = True, **kw):
        super().__init__(n, **kw)
        self.tau = float(tau)
        if not self.tau >= self.dt:
            raise ConfigError(f"tau must be >= dt ({self.dt}), got {tau}", key="tau")
        self.decay_input = bool(decay_input)
        self.k = self.dt / self.tau

    def decay_factor(self) -> torch.Tensor | float:
        """k = dt / tau, the fraction of (v - v_rest) lost per step."""
        return self.k

    def neuronal_charge(self, x: torch.Tensor) -> None:
        k = self.decay_factor()
        v_rest = self.v_init
        if self.decay_input:
            self.v = self.v + k * (x - (self.v - v_rest))
        else:
            self.v = self.v - k * (self.v - v_rest) + x

    def forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor:
        # subclasses (PLIF's learned tau, ALIF's threshold ...) change the equations: step loop
        fused = None
        if type(self) is LIFNode:
            fused = self.fused_forward_multi(x_seq, tau=self.tau, k=self.k, decay_input=self.decay_input)
        return super().forward_multi(x_seq) if fused is None else fused

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau={self.tau}, decay_input={self.decay_input}"


@NeuronModel.register("plif", "parametric_lif")
class ParametricLIFNode(LIFNode):
    """Parametric LIF (Fang et al. 2021): LIF whose time constant is learned.

    The per-step factor is ``k = sigmoid(w)`` = dt / tau with one learnable ``w`` per group
    (``w`` starts at ``-log(init_tau / dt - 1)``, so tau = init_tau); charge as :class:`LIFNode`.
    Defaults init_tau=2, decay_input=true (SpikingJelly's ParametricLIFNode).
    """

    def __init__(self, n=1, *, init_tau: float = 2.0, decay_input: bool = True, **kw):
        dt = float(kw.get("dt", 1.0))
        if not float(init_tau) > dt:
            raise ConfigError(f"init_tau must be > dt ({dt}), got {init_tau}", key="init_tau")
        super().__init__(n, tau=init_tau, decay_input=decay_input, **kw)
        self.w = nn.Parameter(torch.tensor(-math.log(float(init_tau) / self.dt - 1.0)))

    def decay_factor(self) -> torch.Tensor:
        return torch.sigmoid(self.w)

    def forward_multi(self, x_seq: torch.Tensor) -> torch.Tensor:
        # the fused kernels take k = sigmoid(w) as a tensor and return its gradient
        fused = None
        if type(self) is ParametricLIFNode:
            fused = self.fused_forward_multi(x_seq, tau=self.tau, k=self.decay_factor(),
                                             decay_input=self.decay_input)
        return TrainableNode.forward_multi(self, x_seq) if fused is None else fused

    @property
    def tau_now(self) -> float:
        """The current learned time constant dt / sigmoid(w)."""
        return self.dt / float(torch.sigmoid(self.w.detach()))

    def _device_dtype(self):
        return self.w.device, self.w.dtype

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, learned tau={self.tau_now:.3f}"


@NeuronModel.register("leaky_integrator", "li")
class LeakyIntegrator(LIFNode):
    """Non-spiking leaky integrator readout: the LIF charge without fire or reset.

    ``v <- v + k (x - v)`` (decay_input) or ``v <- v - k v + x``; emits no spikes. Read its
    membrane potential with a membrane loss (``membrane_ce``); defaults tau=2.
    """

    def __init__(self, n=1, *, tau: float = 2.0, decay_input: bool = True, **kw):
        kw.setdefault("v_reset", 0.0)
        super().__init__(n, tau=tau, decay_input=decay_input, **kw)

    def neuronal_fire(self) -> torch.Tensor:
        return torch.zeros_like(self.v)

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        pass
