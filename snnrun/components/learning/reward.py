"""Reward-modulated and label-driven local rules: MSTDP, MSTDPET (Florian 2007), reward-switch STDP,
tempotron; and the reward sources that feed them.

Reward sources (``reward:`` on a rule)::

    reward: {type: label_match, n_classes: 10}   # classification: reward the neurons of the label's class
    reward: {type: external}                     # read rule.reward, set by your own loop / environment
    reward: {type: constant_reward, value: 1.0}
    reward: {_target_: mypkg.my_reward}          # any callable (rule) -> reward tensor or None

A reward is a tensor broadcastable to (B, n_post): one value per sample, or one per sample and
postsynaptic neuron. Rules that need the labels of the presented samples (``needs_labels``)
get them from the training loop through :func:`set_labels` before each presentation.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from snnrun.errors import ConfigError
from snnrun.components.learning.base import LearningRule
from snnrun.components.learning.stdp import TraceSTDP
from snnrun.registry import Registered, Registry, as_node, import_target

SCOPES = ("neuron", "sample")


class RewardSource(Registered):
    """Base class: ``__call__(rule) -> reward (broadcastable to (B, n_post)) or None`` each step."""

    registry: Registry = Registry("reward source")
    needs_labels = False

    def __call__(self, rule: "RewardModulated") -> torch.Tensor | None:  # pragma: no cover - abstract
        raise NotImplementedError


def build_reward(node: Any, key: str = "reward") -> Any:
    """A reward source from config: a registered ``type`` or a ``_target_`` class/callable."""
    node = as_node(node, key, default={"type": "external"})
    if "_target_" in node:
        target = import_target(node.pop("_target_"), key=f"{key}._target_")
        if isinstance(target, type):
            return target(**node)
        if node:
            raise ConfigError(f"options {sorted(node)} given for the function {target.__name__}", key=key)
        return target
    return RewardSource.registry.build(node, key=key)


@RewardSource.register("label_match")
class LabelMatch(RewardSource):
    """Classification reward: postsynaptic neuron j belongs to class ``j * n_classes // n_post``
    (contiguous populations); at each step a spike of a neuron of the sample's label class earns
    ``hit``, a spike of any other neuron ``miss``. ``scope: neuron`` gives each neuron its own
    reward (the winner-take-all R-STDP of Mozafari et al. 2018); ``scope: sample`` sums them into
    one reward per sample (Florian's global reward signal). ``group`` reads the spikes of another
    group of the network than the rule's target (e.g. the readout, for a hidden layer's
    ``bp_rstdp``, which feeds that reward vector back to its own neurons)."""

    needs_labels = True

    def __init__(self, n_classes: int, hit: float = 1.0, miss: float = -1.0, scope: str = "neuron",
                 group: str | None = None):
        self.n_classes, self.hit, self.miss = int(n_classes), float(hit), float(miss)
        if scope not in SCOPES:
            raise ConfigError(f"unknown scope '{scope}'. Allowed: {', '.join(SCOPES)}", key="scope")
        self.scope = scope
        self.group = None if group is None else str(group)
        self._classes: torch.Tensor | None = None

    def classes(self, n_post: int, device) -> torch.Tensor:
        if self._classes is None or self._classes.numel() != n_post or self._classes.device != device:
            if n_post < self.n_classes:
                raise ConfigError(f"label_match needs at least one neuron per class: {n_post} neurons for "
                                  f"{self.n_classes} classes", key="n_classes")
            self._classes = torch.arange(n_post, device=device) * self.n_classes // n_post
        return self._classes

    def spiking_group(self, rule):
        if self.group is None:
            return rule.target
        groups = getattr(rule, "groups", None) or {}
        if self.group not in groups:
            raise ConfigError(f"no group '{self.group}'. Groups: {', '.join(groups) or '(none handed to the rule)'}",
                              key="reward.group")
        return groups[self.group]

    def __call__(self, rule):
        s = self.spiking_group(rule).s.flatten(1)
        check_labels(rule.labels, s.shape[0], "label_match")
        match = self.classes(s.shape[1], s.device)[None, :] == rule.labels.reshape(-1, 1)
        r = s * torch.where(match, self.hit, self.miss).to(s.dtype)
        return r if self.scope == "neuron" else r.sum(1, keepdim=True)


def check_labels(labels: torch.Tensor, batch: int, who: str) -> None:
    """The labels handed to a rule are those of the samples it simulates."""
    if labels.numel() != batch:
        raise ConfigError(f"{who} got labels for {labels.numel()} samples but simulates {batch}; hand a rule the "
                          "labels of the batch it is presented (in a data-parallel run, each rank's rows: "
                          "labels[strategy.rows], as snnrun's training loop does)", key="labels")


@RewardSource.register("external")
class External(RewardSource):
    """The reward your own code sets on the rule (``rule.reward = tensor``) before or during a
    presentation; None means no reward (no weight change)."""

    def __call__(self, rule):
        return rule.reward


@RewardSource.register("constant_reward")
class ConstantReward(RewardSource):
    """The same reward ``value`` at every step (demos and tests)."""

    def __init__(self, value: float = 1.0):
        self.value = float(value)

    def __call__(self, rule):
        return torch.tensor(self.value)


def set_labels(network, labels: torch.Tensor) -> None:
    """Hand the labels of the next presentation to every local rule of ``network``."""
    for rule in network.learners.values():
        rule.begin_presentation(labels)


class LabelledRule(LearningRule):
    """A rule that may need the labels of the samples being presented (``self.labels``, (B,))."""

    needs_labels = False
    labels: torch.Tensor | None = None

    def begin_presentation(self, labels: torch.Tensor) -> None:
        """Keep the labels when the rule needs them, in one persistent tensor per batch size
        (copied in place): a CUDA graph captured for a batch size reads that size's tensor, so the
        last, smaller batch of an epoch does not leave the other graphs reading stale labels."""
        if not self.needs_labels:
            return
        dev = self.connection.w.device
        bufs = self.__dict__.setdefault("_label_buffers", {})
        buf = bufs.get(tuple(labels.shape))
        if buf is None or buf.device != dev:
            buf = bufs[tuple(labels.shape)] = labels.to(dev).clone()
        else:
            buf.copy_(labels, non_blocking=True)
        self.labels = buf


class RewardModulated(LabelledRule):
    """Base of the reward-modulated rules: ``reward`` is a reward source node (default
    ``external``); ``nu`` (a number) is the learning rate gamma."""

    def __init__(self, connection, *, reward: Any = None, **kw):
        super().__init__(connection, **kw)
        self.check_connection(connection)
        self.reward_source = build_reward(reward)
        self.needs_labels = bool(getattr(self.reward_source, "needs_labels", False))
        self.reward: torch.Tensor | None = None
        self.labels = None

    def check_connection(self, connection) -> None:
        if connection.w.dim() != 2:
            raise ConfigError(f"{self.registered_name} learns dense connections (a 2-D weight matrix)",
                              key="connection")

    @property
    def lr(self) -> float:
        return self.nu[0]

    def current_reward(self, batch: int) -> torch.Tensor | None:
        """This step's reward as (B, 1) or (B, n_post), or None."""
        if self.needs_labels and self.labels is None:
            raise ConfigError(f"{self.registered_name} with a label reward needs the labels of each presentation "
                              "(snnrun's training loop sets them; in your own loop call "
                              "snnrun.components.learning.reward.set_labels(network, labels))", key="reward")
        r = self.reward_source(self)
        if r is None:
            return None
        r = torch.as_tensor(r, device=self.connection.w.device, dtype=self.connection.w.dtype)
        if self.data_parallel is not None:  # a reward of the whole batch: this rank's rows of it
            r = self.data_parallel.rows_of(r, batch)
        if r.dim() == 0:
            r = r.expand(batch, 1)
        elif r.dim() == 1:
            r = r.reshape(batch, 1) if r.numel() == batch else r.reshape(1, -1).expand(batch, -1)
        return r

    def reduced(self, dw: torch.Tensor, batch: int) -> torch.Tensor:
        return dw / batch if self.reduction == "mean" else dw

    def spikes(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.source.s.flatten(1), self.target.s.flatten(1)


@LearningRule.register("mstdp", source="bindsnet")
class MSTDP(RewardModulated):
    """Reward-modulated STDP (Florian 2007; BindsNET's MSTDP; SPAIC's RSTDP is ``rstdp``).

    Per step, with the rule's own traces (reset every presentation)::

        p_plus  <- p_plus  exp(-dt / tc_plus)  + a_plus  s_pre       (presynaptic)
        p_minus <- p_minus exp(-dt / tc_minus) + a_minus s_post      (postsynaptic, a_minus < 0)
        zeta_ij  = p_plus_i s_post_j + s_pre_i p_minus_j             (the STDP of this step)
        dw_ij    = nu r(t) zeta_ij                                    (r per sample or per neuron)

    summed (or averaged) over the batch. ``nu`` (a number) is gamma, default 0.01 (BindsNET
    leaves it to the user: its default nu is 0, no learning); tc 20 ms, a_plus 1, a_minus -1
    (Florian's, BindsNET's and SPAIC's defaults). As in SPAIC, zeta of the current step is used
    (BindsNET applies the previous step's).
    """

    def __init__(self, connection, *, tc_plus: float = 20.0, tc_minus: float = 20.0, a_plus: float = 1.0,
                 a_minus: float = -1.0, nu: float | list = 0.01, **kw):
        super().__init__(connection, nu=nu, **kw)
        for k, v in (("tc_plus", tc_plus), ("tc_minus", tc_minus)):
            if not float(v) > 0:
                raise ConfigError(f"must be > 0 ms, got {v}", key=k)
        self.decay_plus, self.decay_minus = math.exp(-self.dt / float(tc_plus)), math.exp(-self.dt / float(tc_minus))
        self.a_plus, self.a_minus = float(a_plus), float(a_minus)
        self.p_plus = self.p_minus = None

    def reset_state(self, batch_size: int) -> None:
        self.p_plus = self.p_minus = None

    def traces(self, s_pre, s_post):
        if self.p_plus is None or self.p_plus.shape != s_pre.shape:
            self.p_plus, self.p_minus = torch.zeros_like(s_pre), torch.zeros_like(s_post)
        self.p_plus = self.p_plus * self.decay_plus + self.a_plus * s_pre
        self.p_minus = self.p_minus * self.decay_minus + self.a_minus * s_post
        return self.p_plus, self.p_minus

    def update(self) -> None:
        s_pre, s_post = self.spikes()
        p_plus, p_minus = self.traces(s_pre, s_post)
        r = self.current_reward(s_pre.shape[0])
        if r is None:
            return
        # sum_b r_b zeta_b without forming (B, n_pre, n_post): r scales the postsynaptic factors
        dw = p_plus.t() @ (s_post * r) + s_pre.t() @ (p_minus * r)
        self.connection.w.add_(self.reduced(dw, s_pre.shape[0]), alpha=self.lr)


@LearningRule.register("rstdp", source="spaic")
class RSTDP(MSTDP):
    """SPAIC's RSTDP (spaic/Learning/RSTDP.py; Florian 2007): :class:`MSTDP`'s equations with SPAIC's
    default learning rate ``lr`` = ``nu`` = 0.1 (tau_plus = tau_minus = 20 ms, A_plus 1, A_minus -1)::

        p_plus  <- p_plus  exp(-dt / tc_plus)  + a_plus  s_pre
        p_minus <- p_minus exp(-dt / tc_minus) + a_minus s_post
        dw_ij    = nu r (p_plus_i s_post_j + s_pre_i p_minus_j)      (the traces of this step)
    """

    def __init__(self, connection, *, nu: float | list = 0.1, **kw):
        super().__init__(connection, nu=nu, **kw)


@LearningRule.register("mstdpet", "rstdpet", source="bindsnet")
class MSTDPET(MSTDP):
    """Reward-modulated STDP with an eligibility trace (Florian 2007; BindsNET's MSTDPET).

    SPAIC's RSTDPET. On top of :class:`MSTDP`'s traces and zeta, per sample b::

        z_b  <- z_b exp(-dt / tc_e_trace) + zeta_b / tc_e_trace     (dz/dt = -z/tau_z + zeta/tau_z)
        dw    = nu dt sum_b r_b z_b

    so a reward that comes after a pairing still credits it, decayed by exp(-delay / tc_e_trace).
    Default tc_e_trace 25 ms. The trace is reset at each presentation.
    """

    def __init__(self, connection, *, tc_e_trace: float = 25.0, **kw):
        super().__init__(connection, **kw)
        if not float(tc_e_trace) > 0:
            raise ConfigError(f"must be > 0 ms, got {tc_e_trace}", key="tc_e_trace")
        self.tc_e_trace = float(tc_e_trace)
        self.decay_e = math.exp(-self.dt / self.tc_e_trace)
        self.z: torch.Tensor | None = None

    def reset_state(self, batch_size: int) -> None:
        super().reset_state(batch_size)
        self.z = None

    def update(self) -> None:
        s_pre, s_post = self.spikes()
        p_plus, p_minus = self.traces(s_pre, s_post)
        zeta = p_plus.unsqueeze(2) * s_post.unsqueeze(1) + s_pre.unsqueeze(2) * p_minus.unsqueeze(1)
        self.z = zeta / self.tc_e_trace if self.z is None else self.z * self.decay_e + zeta / self.tc_e_trace
        r = self.current_reward(s_pre.shape[0])
        if r is None:
            return
        dw = torch.einsum("bij,bj->ij", self.z, r.expand(s_pre.shape[0], s_post.shape[1]))
        self.connection.w.add_(self.reduced(dw, s_pre.shape[0]), alpha=self.lr * self.dt)


@LearningRule.register("reward_switch_stdp", "spaic.switch_rstdp", source="spaic")
class RewardSwitchSTDP(RewardModulated, TraceSTDP):
    """STDP whose amplitudes switch with the sign of the reward (SPAIC's ``RewardSwitchSTDP``).

    Own nearest-spike traces x_pre, x_post (tc 20 ms, reset per presentation); per sample b with
    reward r_b (per sample or per postsynaptic neuron)::

        A_post = a_post_pos if r > 0, a_post_neg if r < 0, 0 if r = 0     (likewise A_pre)
        dw_ij  = mean_b [ x_pre_i s_post_j A_post(r_bj) + s_pre_i x_post_j A_pre(r_bj) ]

    Defaults a_post_pos 5e-3, a_pre_pos -4e-3, a_post_neg -5e-3, a_pre_neg 4e-3 (SPAIC); unlike
    SPAIC, a zero reward changes nothing (SPAIC treats it as negative). Hard or soft bounds.
    """

    own_traces, nearest = True, True
    reduces_batch = True  # the sign of the batch's dw splits it into P and D: ranks sum dw first

    def __init__(self, connection, *, a_post_pos: float = 5e-3, a_pre_pos: float = -4e-3,
                 a_post_neg: float = -5e-3, a_pre_neg: float = 4e-3, reduction: str = "mean", **kw):
        super().__init__(connection, reduction=reduction, **kw)
        self.amps = (float(a_post_pos), float(a_pre_pos), float(a_post_neg), float(a_pre_neg))

    def update(self) -> None:
        s_pre, x_pre, s_post, x_post = self.spikes_and_traces()
        r = self.current_reward(s_pre.shape[0])
        if r is None:
            return
        post_pos, pre_pos, post_neg, pre_neg = self.amps
        pos, neg = (r > 0).to(s_post.dtype), (r < 0).to(s_post.dtype)
        a_post = pos * post_pos + neg * post_neg
        a_pre = pos * pre_pos + neg * pre_neg
        dw = self.batch_total(x_pre.t() @ (s_post * a_post) + s_pre.t() @ (x_post * a_pre))
        if self.reduction == "mean":
            dw = dw / self.batch_size(s_pre.shape[0])
        self.apply(dw.clamp_min(0.0), (-dw).clamp_min(0.0))


@LearningRule.register("tempotron")
class Tempotron(LabelledRule):
    """Tempotron learning (Gütig & Sompolinsky 2006) for single-layer spike-timing classification.

    Each postsynaptic neuron j is a binary classifier for class ``j * n_classes // n_post``: it
    should fire for samples of its class and stay silent otherwise. During a presentation the
    rule tracks, per sample and neuron, the time t_max of the maximal membrane potential (the
    first spike if it fired) and each input's PSP at that time,
    ``K_i(t_max) = sum_{t_i <= t_max} V0 (exp(-(t_max - t_i)/tau) - exp(-(t_max - t_i)/tau_s))``
    (V0 normalises the kernel's peak to 1). At the end of the presentation, on errors only::

        should fire, did not:   w_ij += nu K_i(t_max)
        should not, but fired:  w_ij -= nu K_i(t_max)

    summed (or averaged) over the batch. For the exact model use a target neuron whose PSP is
    this kernel (e.g. ``current_lif`` with tc_decay = tau, tc_i_decay = tau_s); the rule reads
    the target's ``v`` and spikes. Defaults tau 20 ms, tau_s 5 ms (SPAIC), nu 0.01.
    """

    needs_labels = True

    def __init__(self, connection, *, n_classes: int, tau: float = 20.0, tau_s: float = 5.0,
                 nu: float | list = 0.01, **kw):
        super().__init__(connection, nu=nu, **kw)
        if connection.w.dim() != 2:
            raise ConfigError("tempotron learns dense connections (a 2-D weight matrix)", key="connection")
        tau, tau_s = float(tau), float(tau_s)
        if not tau > tau_s > 0:
            raise ConfigError(f"need tau > tau_s > 0, got tau={tau}, tau_s={tau_s}", key="tau")
        self.classes = LabelMatch(n_classes).classes
        self.decay, self.decay_s = math.exp(-self.dt / tau), math.exp(-self.dt / tau_s)
        t_peak = tau * tau_s * math.log(tau / tau_s) / (tau - tau_s)
        self.v0 = 1.0 / (math.exp(-t_peak / tau) - math.exp(-t_peak / tau_s))
        self.labels = None
        self._clear()

    def _clear(self) -> None:
        self.slow = self.fast = self.best = self.psp_at_best = self.fired = None

    def reset_state(self, batch_size: int) -> None:
        self._clear()

    def update(self) -> None:
        b = self.source.s.shape[0]
        s_pre, s_post = self.source.s.flatten(1), self.target.s.flatten(1)
        v = getattr(self.target, "v", None)
        if v is None:
            raise ConfigError(f"tempotron needs a target group with a membrane potential v, not "
                              f"{type(self.target).__name__}", key="connection")
        v = v.flatten(1).to(s_post.dtype)
        if self.slow is None:
            self.slow, self.fast = torch.zeros_like(s_pre), torch.zeros_like(s_pre)
            self.best = torch.full_like(s_post, -math.inf)
            self.psp_at_best = torch.zeros(b, s_post.shape[1], s_pre.shape[1], device=s_pre.device, dtype=s_pre.dtype)
            self.fired = torch.zeros_like(s_post, dtype=torch.bool)
        self.slow = self.slow * self.decay + s_pre
        self.fast = self.fast * self.decay_s + s_pre
        psp = self.v0 * (self.slow - self.fast)  # (B, n_pre)
        # a spike is the maximum (the neuron stops integrating there); otherwise the highest v
        score = torch.where(self.fired, -math.inf, torch.where(s_post > 0, math.inf, v))
        better = score > self.best
        self.best = torch.where(better, score, self.best)
        self.psp_at_best = torch.where(better.unsqueeze(2), psp.unsqueeze(1), self.psp_at_best)
        self.fired = self.fired | (s_post > 0)

    def presentation_update(self) -> None:
        if self.fired is None:
            return
        if self.labels is None:
            raise ConfigError("tempotron needs the labels of each presentation (snnrun's training loop sets "
                              "them; in your own loop call snnrun.components.learning.reward.set_labels(network, labels))",
                              key="connection")
        b, n_post = self.fired.shape
        check_labels(self.labels, b, "tempotron")
        should = self.classes(n_post, self.fired.device)[None, :] == self.labels.reshape(-1, 1)
        sign = (should & ~self.fired).to(self.psp_at_best.dtype) - (~should & self.fired).to(self.psp_at_best.dtype)
        dw = torch.einsum("bj,bji->ij", sign, self.psp_at_best)
        self.connection.w.add_(dw / b if self.reduction == "mean" else dw, alpha=self.nu[0])
        self._clear()
