"""The learner protocol, and the base of local rules (called once per time step, after the
neuron groups have updated).

Every learner of a model (``model.learner``) follows one protocol, whatever it trains:

    begin_presentation(labels)   before a batch is presented (label- and reward-driven rules)
    step()                       every time step while learning (local rules; the network calls it)
    end_presentation()           after the batch's last step (rules that update once per sample)
    train_step(forward, y)       gradient learners: forward, loss, backward, optimiser step
    end_epoch(val_loss)          after each epoch (learning-rate schedules)
    state_dict() / load_state_dict(state)   what a checkpoint keeps besides the weights
"""

from __future__ import annotations

from typing import Sequence

import torch

from snnrun.errors import ConfigError
from snnrun.model_schema import LEARNER_PARAMS
from snnrun.registry import Registered, Registry

REDUCTIONS = ("sum", "mean", "owner")
OVERFLOWS = ("none", "nearest")  # reduction: owner, a sample whose winners are all owned: nothing, or the nearest free neuron
OWNER_BY = ("first_spike", "spike_count")  # reduction: owner, which samples own a neuron (stdp.py)


class Learner:
    """The protocol of every learner (see the module docstring); the defaults do nothing."""

    gradient = False  # trains by backpropagation (the loop calls train_step instead of presenting)

    def begin_presentation(self, labels: torch.Tensor) -> None:
        """The labels of the batch about to be presented."""

    def step(self) -> None:
        """One time step while learning."""

    def end_presentation(self) -> None:
        """After the last step of a presentation while learning."""

    def end_epoch(self, val_loss: float | None) -> None:
        """After each training epoch (with the validation loss, when there is one)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


class LearningRule(Registered, Learner):
    """Base class of local rules acting on one connection.

    ``connection`` is the name of the connection in ``network.connections``; the builder
    hands in the connection object and its source and target groups. ``nu`` holds the
    learning rates ``[pre, post]``. ``reduction`` says how the per-sample updates of a batch
    combine into the one shared weight matrix: ``sum`` (BindsNET's default for batches),
    ``mean``, or ``owner`` (each postsynaptic neuron learns from at most one sample of the
    batch, the first that made it fire, or its first ``owners``; rules that support it say so). ``weight_decay``
    shrinks weights by ``w <- w (1 - weight_decay dt)`` each step.
    After every update the connection's ``wmin``/``wmax`` clamp is applied.

    Data parallelism (``trainer.strategy=ddp``): a rule sees only its process's rows of the batch.
    An update that is a sum over samples (or a 'mean') needs nothing more; a rule whose update
    uses the whole batch's total non-linearly (a floor, a sign, a max) sets ``reduces_batch`` and
    forms that total with :meth:`batch_total` (and :meth:`batch_size` for a global mean).
    """

    registry: Registry = Registry("learning rule", ranges=LEARNER_PARAMS)  # snnrun/model_schema.py
    supports_owner = False  # whether the rule implements the ``owner`` batch reduction
    data_parallel = None    # set by snnrun.engine.data_parallel in a data-parallel (torchrun) run
    # how a data-parallel run combines the ranks' shares of a batch (snnrun/engine/data_parallel.py):
    # False: the update is linear in the batch sum, so each rank applies its rows' update and the
    # ranks' weight changes are summed (DataParallel.reduced_update); True: the update is not (a
    # floor, a sign, a clamp of the batch total), so the rule sums its batch quantities over the
    # ranks itself (:meth:`batch_total`, :meth:`batch_size`) and applies the global update
    reduces_batch = False
    owns_connection = True          # False: a gradient learner still trains the connection (rate_modulate)
    needs_gradient_learner = False  # True: the rule only adds to a gradient learner's loss (extra_loss)
    groups: dict = {}               # the network's groups by name (set by the builder; reward sources read them)

    def __init__(self, connection, *, source=None, target=None, dt: float = 1.0,
                 nu: float | Sequence[float] = (1e-4, 1e-2), reduction: str = "sum",
                 weight_decay: float = 0.0, owners: int | str = 1, overflow: str = "none",
                 owner_by: str = "first_spike"):
        self.connection = connection
        self.source, self.target = source, target
        self.dt = float(dt)
        nu = [float(nu), float(nu)] if isinstance(nu, (int, float)) else [float(v) for v in nu]
        if len(nu) != 2:
            raise ConfigError(f"nu must be [pre, post] (two numbers), got {nu}", key="nu")
        self.nu = nu
        allowed = [r for r in REDUCTIONS if r != "owner" or self.supports_owner]
        if reduction not in allowed:
            raise ConfigError(f"unknown reduction '{reduction}'. Allowed: {', '.join(allowed)}", key="reduction")
        self.reduction = reduction
        self.weight_decay = float(weight_decay)
        # reduction: owner: how many samples of a batch each neuron learns from (a model may set it
        # whatever rule is swapped in: it matters only where the rule supports owner)
        if owners != "auto" and not (isinstance(owners, int) and not isinstance(owners, bool) and owners >= 1):
            raise ConfigError(f"how many samples of a batch each neuron learns from (reduction: owner): a whole "
                              f"number >= 1 or auto (ceil(batch / neurons)), got {owners!r}", key="owners")
        self.owners = owners
        if overflow not in OVERFLOWS:
            raise ConfigError(f"what a sample that teaches no neuron does (reduction: owner): one of "
                              f"{', '.join(OVERFLOWS)}, got {overflow!r}", key="overflow")
        self.overflow = overflow
        if owner_by not in OWNER_BY:
            raise ConfigError(f"which samples of a batch own a neuron (reduction: owner): one of "
                              f"{', '.join(OWNER_BY)}, got {owner_by!r}", key="owner_by")
        self.owner_by = owner_by

    def reset_state(self, batch_size: int) -> None:
        """Called by the network at the start of every presentation (per-sample rule state)."""

    def reduce(self, dw_batch: torch.Tensor) -> torch.Tensor:
        return dw_batch.sum(0) if self.reduction == "sum" else dw_batch.mean(0)

    # -- the batch a data-parallel rank shares with the others -----------------------------------
    def batch_total(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (a sum over this process's samples) summed over the samples of the whole batch:
        over every rank's rows in a data-parallel run (an all-reduce), ``t`` itself otherwise."""
        return t if self.data_parallel is None else self.data_parallel.all_reduce_(t.contiguous())

    def batch_size(self, local: int) -> int:
        """The number of samples of the whole batch (``reduction: mean`` divides by it)."""
        dp = self.data_parallel
        return local if dp is None or not dp.global_n else dp.global_n

    def step(self) -> None:
        if self.data_parallel is None or self.reduces_batch:
            self.update()
        else:  # this rank's share of the batch; the ranks' updates are summed (snnrun/engine/data_parallel.py)
            self.data_parallel.reduced_update(self)
        self.after_update()

    def end_presentation(self) -> None:
        """Called by the network at the end of every presentation while learning; rules that
        update once per sample (e.g. the tempotron) implement :meth:`presentation_update`."""
        if type(self).presentation_update is LearningRule.presentation_update:
            return
        if self.data_parallel is None or self.reduces_batch:
            self.presentation_update()
        else:
            self.data_parallel.reduced_update(self, self.presentation_update)
        self.connection.clamp()

    def presentation_update(self) -> None:
        """The weight change at the end of a presentation (none by default)."""

    def after_update(self) -> None:
        if self.weight_decay:
            self.connection.w.mul_(1.0 - self.weight_decay * self.dt)
        self.connection.clamp()

    def update(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
