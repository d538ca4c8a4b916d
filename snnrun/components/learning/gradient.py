"""Gradient learners: surrogate-gradient backpropagation through time (BPTT).

Configured at ``model.learner`` (alone, or beside local rules in a mapping of named learners)::

    learner:
      type: surrogate_bptt          # or sbp; stca / stbp (SPAIC's: surrogates stca_rect / stbp_gaussian)
      loss: spike_count_ce          # snnrun list losses: how the readout's activity is scored
      connections: null             # the connections it trains (null: every one that no local
                                    # rule owns and that is not `learn: false`), plus every
                                    # trainable neuron parameter (PLIF time constants)
      optimizer: {type: Adam, lr: 1.0e-3}             # any torch.optim class, by its own name (or SPAIC's)
      scheduler: {type: CosineAnnealingLR}             # any torch.optim.lr_scheduler class, or null
      weight_decay: 0.0             # L2 on weights (>= 2-D tensors; not biases, norms, time constants)
      grad_clip: null               # max global gradient norm
      ema: null                     # e.g. 0.999: validate, test and keep a moving average of the weights
      amp: false                    # true/bf16: bf16 autocast; tf32: float32 with TF32 matrix products (CUDA only)
      val_fraction: 0.1             # of the training set, held out to select the best epoch
      surrogate: null               # replace the surrogate of every trainable node
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch
from torch import nn

from snnrun.errors import BadValue, ConfigError
from snnrun.components.learning.base import Learner, LearningRule
from snnrun.components.learning.weight_average import WeightAverage
from snnrun.components.losses import Loss
from snnrun.registry import accepted_kwargs, as_node, did_you_mean
from snnrun.components.surrogates import build_surrogate

# model.learner.amp -> the training step's precision on CUDA
PRECISIONS = {False: None, None: None, True: "bf16", "bf16": "bf16", "tf32": "tf32"}

# schedulers stepped once per batch rather than once per epoch (unless `interval` says otherwise)
PER_STEP_SCHEDULERS = {"OneCycleLR", "CyclicLR"}

# SPAIC's optimiser and schedule names (spaic/Learning/Learner.py: optim_dict, lr_schedule_dict) are
# torch's class names, except SPAIC's 'Rpop' for torch.optim.Rprop; accepted as SPAIC spells them
SPAIC_OPTIMIZERS = ("Adam", "AdamW", "SparseAdam", "Adamax", "ASGD", "LBFGS", "RMSprop", "Rpop", "SGD",
                    "Adadelta", "Adagrad")
SPAIC_SCHEDULERS = ("LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                    "ReduceLROnPlateau", "CyclicLR", "CosineAnnealingWarmRestarts")
SPAIC_SPELLINGS = {"Rpop": "Rprop"}
# names SPAIC lists that cannot drive snnrun's one-forward, dense-gradient train step
UNSUITED = {"LBFGS": "re-evaluates the loss several times per step (a closure); snnrun's train step runs "
                     "one forward per batch",
            "SparseAdam": "takes sparse gradients only; the weights get dense gradients"}


def _torch_class(module, name: str, base: type, what: str, key: str) -> type:
    name = SPAIC_SPELLINGS.get(str(name), str(name))
    cls = getattr(module, name, None)
    options = sorted(n for n, c in vars(module).items()
                     if inspect.isclass(c) and issubclass(c, base) and c is not base and not n.startswith("_"))
    note = "torch's names"
    if module is torch.optim:
        options, note = sorted({*options, *SPAIC_SPELLINGS}), "torch's names; SPAIC's 'Rpop' is Rprop"
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise ConfigError(f"unknown {what} '{name}'.{did_you_mean(name, options)} "
                          f"Available ({note}): {', '.join(options)}", key=key)
    return cls


def _check_options(cls: type, kwargs: dict, set_by_snnrun: set[str], key: str, what: str) -> None:
    """Unknown keyword arguments of a torch class are errors listing the ones it takes."""
    allowed = accepted_kwargs(cls)
    if allowed is None:
        return
    allowed -= set_by_snnrun
    for k in kwargs:
        if k not in allowed:
            raise ConfigError(f"unknown option '{k}' for {what}.{did_you_mean(k, allowed)} "
                              f"Allowed: {', '.join(sorted(allowed))}", key=f"{key}.{k}")


def _check_numbers(cls: type, kwargs: dict, key: str) -> None:
    """Options whose torch default is a number (lr, momentum, eps) or a tuple of numbers (betas)
    must be one: ``lr=abc`` names the key instead of failing inside torch."""
    params = inspect.signature(cls.__init__).parameters
    for k, v in kwargs.items():
        default = params[k].default if k in params else None
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if numeric and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise BadValue(f"expected a number, got {v!r}", key=f"{key}.{k}")
        if isinstance(default, tuple) and all(isinstance(d, (int, float)) for d in default) and not (
                isinstance(v, (list, tuple)) and len(v) == len(default)
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
            raise BadValue(f"expected a list of {len(default)} numbers, got {v!r}", key=f"{key}.{k}")


def _split_type(node: Any, key: str) -> tuple[str, dict]:
    node = as_node(node, key)
    if "type" not in node:
        raise ConfigError("missing 'type' (a torch class name)", key=key)
    return str(node.pop("type")), node


@LearningRule.register("surrogate_bptt", "sbp")
class SurrogateBPTT(Learner):
    """Surrogate-gradient BPTT: trains every layer and trainable neuron parameter of a model.

    Losses come from ``model.loss``; the spike's derivative from each node's surrogate (or the
    learner's ``surrogate``, which overrides them all). One :meth:`train_step` per batch:
    zero grads, forward (bf16 autocast on CUDA with ``amp``), loss, backward through time,
    clip, optimizer step, and the scheduler step for per-batch schedulers.
    """

    gradient = True
    default_surrogate: Any = None

    def __init__(self, *, optimizer: Any = None, scheduler: Any = None, weight_decay: float = 0.0,
                 grad_clip: float | None = None, amp: bool | str = False, val_fraction: float = 0.1,
                 surrogate: Any = None, loss: Any = "spike_count_ce", connections: list[str] | None = None,
                 ema: float | None = None):
        self.loss = Loss.build(loss, key="loss")
        self.connections = None if connections is None else [str(c) for c in connections]
        self.optimizer_node = optimizer if optimizer is not None else {"type": "Adam", "lr": 1e-3}
        self.scheduler_node = scheduler
        self.weight_decay = float(weight_decay)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be > 0 or null, got {grad_clip}", key="grad_clip")
        if not (isinstance(amp, (bool, str, type(None))) and amp in PRECISIONS):
            raise ConfigError(f"amp is true/bf16 (bfloat16 autocast on CUDA), tf32 (float32 tensors, matrix "
                              f"products on TF32 tensor cores, CUDA) or false, got {amp!r}", key="amp")
        self.precision = PRECISIONS[amp]  # None: float32 as torch's defaults have it
        self.ema = None if ema is None else float(ema)  # a number: the registry checks the type first
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"ema is the moving average's decay per step, in (0, 1) (e.g. 0.999), or null; "
                              f"got {ema!r}", key="ema")
        self.average: WeightAverage | None = None  # built with the optimizer (configure)
        self.val_fraction = float(val_fraction)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}", key="val_fraction")
        surrogate = surrogate if surrogate is not None else self.default_surrogate
        self.surrogate = None if surrogate is None else build_surrogate(surrogate)
        # validate the optimizer/scheduler names now (before any data is loaded)
        self.opt_cls, self.opt_kwargs = self._optimizer_spec()
        self.sched_cls, self.sched_kwargs, self.interval = self._scheduler_spec()
        self.optimizer: torch.optim.Optimizer | None = None
        self.capturable = False  # the optimizer was built for a captured step (configure)
        self.scheduler = None
        self.extra_losses: list = []  # local rules whose extra_loss() adds to the loss (rate_modulate)

    # -- construction -------------------------------------------------------------------------
    def _optimizer_spec(self):
        name, kwargs = _split_type(self.optimizer_node, "optimizer")
        cls = _torch_class(torch.optim, name, torch.optim.Optimizer, "optimizer", "optimizer.type")
        if cls.__name__ in UNSUITED:
            raise ConfigError(f"{cls.__name__} {UNSUITED[cls.__name__]}: use e.g. Adam, AdamW, SGD, RMSprop, "
                              "Rpop (Rprop)", key="optimizer.type")
        if "weight_decay" in kwargs:
            raise ConfigError("set weight decay once, as learner weight_decay (it skips biases, norms and "
                              "time constants)", key="optimizer.weight_decay")
        _check_options(cls, kwargs, {"params", "weight_decay"}, "optimizer", f"optimizer {cls.__name__}")
        _check_numbers(cls, kwargs, "optimizer")
        return cls, kwargs

    def _scheduler_spec(self):
        if self.scheduler_node is None:
            return None, {}, "epoch"
        name, kwargs = _split_type(self.scheduler_node, "scheduler")
        interval = kwargs.pop("interval", "step" if name in PER_STEP_SCHEDULERS else "epoch")
        if interval not in ("epoch", "step"):
            raise ConfigError(f"interval is 'epoch' or 'step', got {interval!r}", key="scheduler.interval")
        base = getattr(torch.optim.lr_scheduler, "LRScheduler", None) or torch.optim.lr_scheduler._LRScheduler
        sched = torch.optim.lr_scheduler
        cls = getattr(sched, name, None)
        if not (inspect.isclass(cls) and (issubclass(cls, base) or name == "ReduceLROnPlateau")):
            cls = _torch_class(sched, name, base, "scheduler", "scheduler.type")
        _check_options(cls, kwargs, {"optimizer"}, "scheduler", f"scheduler {name}")
        return cls, kwargs, interval

    def configure(self, model: nn.Module, *, epochs: int, steps_per_epoch: int, capturable: bool = False) -> None:
        """Build the optimizer and scheduler for ``model``; apply the surrogate override.

        ``capturable``: the step will be captured as a CUDA graph (snnrun/engine/graphed_step.py)
        if the optimizer allows it (a ``capturable`` option: Adam, AdamW, RMSprop, ...); it is then
        built with ``capturable=True`` and its learning rate in a tensor on the device, and
        :attr:`capturable` says so."""
        if self.surrogate is not None:
            from snnrun.components.neurons.trainable import TrainableNode

            for m in model.modules():
                if isinstance(m, TrainableNode):
                    m.surrogate = self.surrogate
        decay, no_decay = [], []
        for p in model.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        if not decay and not no_decay:
            raise ConfigError("the model has no trainable parameters", key="model.learner")
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        kwargs = dict(self.opt_kwargs)
        allowed = accepted_kwargs(self.opt_cls) or set()
        device = (decay or no_decay)[0].device
        self.capturable = bool(capturable and device.type == "cuda" and "capturable" in allowed)
        if self.capturable:
            kwargs["capturable"] = True
        try:
            self.optimizer = self.opt_cls([g for g in groups if g["params"]], **kwargs)
            self._lr_on_device()
        except (TypeError, ValueError) as e:
            raise ConfigError(f"cannot build optimizer {self.opt_cls.__name__}: {e}", key="model.learner.optimizer") from e
        self.average = WeightAverage(model, self.ema) if self.ema is not None else None
        self.scheduler = None
        if self.sched_cls is not None:
            kw = dict(self.sched_kwargs)
            name = self.sched_cls.__name__
            total = epochs if self.interval == "epoch" else max(1, epochs * steps_per_epoch)
            if name == "CosineAnnealingLR":
                kw.setdefault("T_max", total)
            elif name == "OneCycleLR":
                kw.setdefault("max_lr", [float(g["lr"]) for g in self.optimizer.param_groups])
                kw.setdefault("total_steps", total)
            try:
                self.scheduler = self.sched_cls(self.optimizer, **kw)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"cannot build scheduler {name}: {e}", key="model.learner.scheduler") from e
            if getattr(self.scheduler, "cycle_momentum", False):
                self.capturable = False  # it replaces the momentum (betas) a captured step would freeze

    def _lr_on_device(self) -> None:
        """A captured optimiser step reads its rate from a tensor: a scheduler's ``fill_`` then
        reaches every replay (a float would be frozen into the graph)."""
        if not self.capturable:
            return
        for g in self.optimizer.param_groups:
            device = g["params"][0].device
            lr = g["lr"]
            if not (isinstance(lr, torch.Tensor) and lr.device == device):
                g["lr"] = torch.tensor(float(lr), dtype=torch.float32, device=device)

    # -- training ---------------------------------------------------------------------------
    def autocast(self, device: torch.device):
        """bf16 autocast on CUDA with ``amp: true/bf16``; a no-op elsewhere. Inside a CUDA-graph capture
        without the cast-weight cache (torch's rule: cached casts would outlive the capture)."""
        if self.precision == "bf16" and device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16,
                                  cache_enabled=not torch.cuda.is_current_stream_capturing())
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def matmul_precision(self, device: torch.device):
        """``amp: tf32`` on CUDA: the step's float32 matrix products (forward and backward; torch
        already runs convolutions on TF32 by default) on TF32 tensor cores, 10 of float32's 23
        mantissa bits kept in the operands, float32 accumulation. torch's setting is restored
        after the step, so evaluation and other code keep full float32 products."""
        if self.precision != "tf32" or device.type != "cuda":
            yield
            return
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)

    def train_step(self, forward, y: torch.Tensor, device: torch.device, scale: float = 1.0):
        """One optimisation step. ``forward()`` returns the readout's output; returns (loss,
        output). ``scale`` multiplies the loss (a data-parallel rank's share of the batch)."""
        loss, output = self.device_step(forward, y, device, scale)
        self.after_step()
        return loss, output

    def device_step(self, forward, y: torch.Tensor, device: torch.device, scale: float = 1.0):
        """The part of :meth:`train_step` that runs on the device with no host sync (what a CUDA
        graph captures): zero grads, forward, loss, backward, clip, optimizer step."""
        with self.matmul_precision(device):
            return self._device_step(forward, y, device, scale)

    def _device_step(self, forward, y: torch.Tensor, device: torch.device, scale: float):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast(device):
            output = forward()
            if len(y):
                loss = self.loss.loss(output, y)
            else:  # a data-parallel rank without rows (a last batch smaller than the world): no
                loss = output["out"].sum() * 0.0  # contribution, but the same backward (DDP's all-reduce)
            for rule in self.extra_losses:
                extra = rule.extra_loss()
                if extra is not None:
                    loss = loss + extra
            if scale != 1.0:
                loss = loss * scale
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                     self.grad_clip)
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        # the outputs leave without their autograd graph: it would keep the forward's saved
        # activations alive until the caller drops them, and a captured step's static outputs keep
        # it for good, with the AccumulateGrad nodes it made on the capture stream, which the next
        # shape's warm-up on another stream would then reuse (torch warns of the mismatch)
        return loss.detach(), {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in output.items()}

    def after_step(self) -> None:
        """Host work after each step: a per-batch scheduler's step (outside any captured graph)."""
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()

    def end_epoch(self, val_loss: float | None) -> None:
        if self.scheduler is None or self.interval != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if val_loss is not None:
                self.scheduler.step(val_loss)
        else:
            self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"]) if self.optimizer else float("nan")

    def evaluation_weights(self):
        """A context with the moving average of the weights in the model (``ema``), or a no-op."""
        return self.average.swapped() if self.average is not None else contextlib.nullcontext()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict() if self.optimizer else None,
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "average": self.average.state_dict() if self.average else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("optimizer") is not None and self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self._lr_on_device()  # the saved rate may be a float or on another device
        if state.get("scheduler") is not None and self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("average") is not None and self.average is not None:
            self.average.load_state_dict(state["average"])


@LearningRule.register("stca", source="spaic")
class STCA(SurrogateBPTT):
    """SPAIC's STCA (Gu et al. 2019, IJCAI): BPTT where every trainable node fires at v > threshold
    and passes the gradient through where |v - threshold| < alpha (height 1, SPAIC's ActFun;
    surrogate ``stca_rect``, alpha=0.5). ``surrogate`` overrides it."""

    default_surrogate = {"type": "stca_rect", "alpha": 0.5}


@LearningRule.register("stbp", source="spaic")
class STBP(SurrogateBPTT):
    """SPAIC's STBP (Wu et al. 2018, Front. Neurosci. 12:331): BPTT where every trainable node fires
    at v > threshold with the Gaussian pseudo-derivative exp(-(v - th)^2 / (2 alpha)) / (2 pi alpha)
    (SPAIC's STBP ActFun; surrogate ``stbp_gaussian``, alpha=0.5), replacing each node's own
    surrogate. ``surrogate`` overrides it."""

    default_surrogate = {"type": "stbp_gaussian", "alpha": 0.5}


def is_gradient_learner(node: Any) -> bool:
    """Whether a ``model.learner`` node names a gradient learner (surrogate_bptt and friends)."""
    from snnrun.registry import import_target

    try:
        node = as_node(node, "model.learner")
    except ConfigError:
        return False
    if "_target_" in node:
        cls = import_target(node["_target_"], key="model.learner._target_")
    elif "type" in node:
        cls = LearningRule.registry.get(str(node["type"]), key="model.learner.type")
    else:
        return False
    return bool(getattr(cls, "gradient", False))
