"""Data-parallel training over torch.distributed: ``trainer.strategy=ddp`` under ``torchrun``.

One run, N processes (one per GPU; gloo on CPU). ``trainer.batch_size`` is the *global* batch:
each rank takes a contiguous share of every global batch, so a run learns the same with any
number of processes (up to float summation order). What is reduced across ranks:

- gradient models: gradients (DistributedDataParallel; BatchNorm becomes SyncBatchNorm on GPUs),
  epoch loss/accuracy, validation and test predictions;
- local-learning models (STDP): at every time step each rank simulates its share of the batch
  and the batch-summed quantities -- a rule's weight update, adaptive-threshold increments,
  'owner' claims -- are all-reduced, so every rank holds the same weights at every step;
  the readout counts of each batch are all-gathered, so label assignment, running and test
  accuracy are those of the whole batch / test set.

Random streams stay rank-independent: every rank seeds the same generators and draws the
random numbers of the *whole* global batch (Poisson spikes, D&C's one-spike choice), then keeps
its rows, so a sample's spikes do not depend on the rank that simulates it.

Rank 0 alone writes files and prints; see :func:`rank_zero_only`. Hydra's own outputs are
silenced on the other ranks by the CLI (``snnrun/cli.py``).
"""

from __future__ import annotations

import contextlib
import functools
import os
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from snnrun.errors import ConfigError

STRATEGIES = ("single", "ddp")
BACKENDS = ("auto", "nccl", "gloo")

_active: "DataParallel | None" = None
# local rules whose batch combination is a sum/mean/owner of per-sample updates (checked to be
# reproduced exactly by all-reducing the per-step update); label- or reward-driven rules are not yet
LOCAL_RULES = ("PostPreSTDP",)


def env_rank() -> int:
    """This process's rank as torchrun announces it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return env_rank() == 0


def rank_zero_only(fn: Callable) -> Callable:
    """Run ``fn`` on rank 0 only (writers of run files); other ranks get None."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main() else None

    return wrapper


def active() -> "DataParallel | None":
    return _active


class DataParallel:
    """This process's place in the run and the collectives the loops use.

    ``world == 1`` (``strategy=ddp`` outside torchrun) is valid: every collective is a no-op.
    """

    def __init__(self, rank: int, world: int, local_rank: int, device: torch.device):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device
        self.global_n = 0               # size of the global batch being simulated
        self.rows = slice(0, 0)         # this rank's rows of it

    # -- sharding ------------------------------------------------------------------------------
    def shard(self, n: int) -> slice:
        """Contiguous share of ``n`` rows: sizes differ by at most one, lower ranks first."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def begin_batch(self, n: int) -> slice:
        self.global_n, self.rows = n, self.shard(n)
        return self.rows

    # -- collectives ---------------------------------------------------------------------------
    def all_reduce_(self, t: torch.Tensor, op=None) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
        return t

    def gather_rows(self, t: torch.Tensor, n: int) -> torch.Tensor:
        """All ranks' shares of an ``n``-row tensor (split by :meth:`shard`), in global order."""
        if self.world == 1:
            return t
        rows = -(-n // self.world)
        padded = t.new_zeros((rows, *t.shape[1:]))
        padded[:t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded.contiguous())
        sizes = [self._size(n, r) for r in range(self.world)]
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    def _size(self, n: int, rank: int) -> int:
        base, extra = divmod(n, self.world)
        return base + (rank < extra)

    def broadcast_object(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    # -- rank-independent randomness -----------------------------------------------------------
    def rand_rows(self, like: torch.Tensor) -> torch.Tensor:
        """``rand_like(like)`` for this rank's rows, drawn as the whole global batch's numbers."""
        full = torch.rand((self.global_n, *like.shape[1:]), device=like.device, dtype=like.dtype)
        return full[self.rows]

    def any_(self, t: torch.Tensor) -> bool:
        """Whether ``t`` has a non-zero on any rank (keeps rank-conditional RNG draws in step)."""
        flag = torch.tensor([int(bool(t.any()))], device=t.device)
        return bool(self.all_reduce_(flag, dist.ReduceOp.MAX if self.world > 1 else None))

    # -- local learning ------------------------------------------------------------------------
    def reduced_update(self, rule) -> None:
        """Run ``rule.update()`` on this rank's samples; apply the sum of all ranks' updates.

        The update is read back as the change of the weights, so any rule whose batch
        reduction is a sum (or 'mean', rescaled to the global batch) works unchanged."""
        w = rule.connection.w
        before = w.detach().clone()
        rule.update()
        with torch.no_grad():
            w.sub_(before)
            if rule.reduction == "mean" and self.global_n:
                w.mul_((self.rows.stop - self.rows.start) / self.global_n)
            self.all_reduce_(w)
            w.add_(before)

    def _claim_global(self, rule, s_post: torch.Tensor) -> torch.Tensor:
        """The 'owner' claims with global sample indices: neuron j belongs to the first sample of
        the *global* batch that fired it (the same claims on every rank). Returns (n_post,) global
        owner indices (-1: none yet); a presentation starts when the rule reset ``owner``."""
        b, n = s_post.shape
        if getattr(rule, "owner", None) is None or getattr(rule, "_dp_owner", None) is None:
            rule._dp_owner = torch.full((n,), -1, dtype=torch.long, device=s_post.device)
        none = self.global_n  # larger than any global index
        cand = torch.full((n,), none, dtype=torch.long, device=s_post.device)
        if b:
            cand = torch.where(s_post.amax(0) > 0, s_post.argmax(0) + self.rows.start, cand)
        self.all_reduce_(cand, dist.ReduceOp.MIN if self.world > 1 else None)
        owner = rule._dp_owner
        rule._dp_owner = torch.where((cand < none) & (owner < 0), cand, owner)
        return rule._dp_owner

    def claim(self, rule, s_post: torch.Tensor) -> None:
        """``PostPreSTDP.claim`` across ranks: ``rule.owner`` holds the *local* row of each
        neuron's owner, -1 where the owner is on another rank (its rows add nothing here)."""
        owner = self._claim_global(rule, s_post)
        local = owner - self.rows.start
        rule.owner = torch.where((owner >= 0) & (local < s_post.shape[0]) & (local >= 0), local, -1)

    def owner_mask(self, rule, s_post: torch.Tensor) -> torch.Tensor:
        """``PostPreSTDP.owner_mask`` across ranks: (B_local, n_post) 1 where the sample owns j."""
        owner = self._claim_global(rule, s_post)
        rule.owner = owner
        samples = torch.arange(s_post.shape[0], device=s_post.device)[:, None] + self.rows.start
        return (samples == owner[None, :]).to(s_post.dtype)

    def check_batch(self, exp) -> None:
        bs = int(exp.cfg["trainer"]["batch_size"])
        if bs < self.world:
            raise ConfigError(f"trainer.batch_size is the global batch, split over the {self.world} processes; "
                              f"it must be >= {self.world}, got {bs}", key="trainer.batch_size")

    def attach_local_learning(self, exp) -> None:
        """Hook an Experiment's network into this run (see the module docstring)."""
        self.check_batch(exp)
        for name, rule in exp.network.learners.items():
            if type(rule).__name__ not in LOCAL_RULES:
                raise ConfigError(f"data-parallel local learning supports the rules {', '.join(LOCAL_RULES)} "
                                  f"(batch-summed updates); this one is {type(rule).__name__}",
                                  key=f"model.network.learners.{name}")
        exp.data_parallel = self
        for group in exp.network.groups.values():
            group.data_parallel = self
        for rule in exp.network.learners.values():
            rule.data_parallel = self
            if rule.reduction == "owner":  # the rule's claim step, with global sample indices
                for api in ("claim", "owner_mask"):
                    if hasattr(rule, api):
                        setattr(rule, api, functools.partial(getattr(self, api), rule))
        # collectives run eagerly every step: no torch.compile'd step, no captured CUDA graph
        from snnrun.engine.cuda_graph import GraphRunner

        exp.network._step = exp.network.step
        exp.runner = GraphRunner(exp._simulate, exp.network, enabled=False)

    # -- gradient models -----------------------------------------------------------------------
    def wrap_gradient(self, exp) -> None:
        """DistributedDataParallel around the model (SyncBatchNorm on GPUs unless
        ``trainer.sync_batchnorm=false``: batch statistics of the global batch, as in one process)."""
        self.check_batch(exp)
        exp.data_parallel = self
        if self.world == 1:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        if exp.device.type == "cuda" and bool(exp.cfg["trainer"].get("sync_batchnorm", True)):
            # exact global-batch statistics, at the price of collectives inside every forward
            # and backward pass; sync_batchnorm=false keeps per-GPU statistics (faster)
            exp.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(exp.model)
        exp.ddp = DDP(exp.model, device_ids=[self.local_rank] if exp.device.type == "cuda" else None)

    def loss_scale(self) -> float:
        """Factor on this rank's mean loss so DDP's gradient average is the global batch mean
        (1 when the shares are equal)."""
        local = self.rows.stop - self.rows.start
        return self.world * local / self.global_n if self.global_n else 1.0

    def evaluate(self, exp, split, batch_size: int, bar=None) -> tuple[float, torch.Tensor]:
        """``exp.evaluate`` over this rank's share of ``split``; loss and predictions of all of it."""
        from snnrun.data import Split

        n = len(split)
        rows = self.shard(n)
        loss, preds = exp.evaluate(Split(split.x[rows], split.y[rows]), batch_size, bar)
        total = torch.tensor([loss * (rows.stop - rows.start)], dtype=torch.float64, device=self.comm_device)
        self.all_reduce_(total)
        preds = self.gather_rows(preds.to(self.comm_device), n).cpu()
        return float(total) / max(n, 1), preds

    def sum_(self, *values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        return self.all_reduce_(t).tolist()

    @property
    def comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


class ScaledLoss:
    """A loss times ``scale`` (see :meth:`DataParallel.loss_scale`); predictions unchanged."""

    def __init__(self, base, scale: float):
        self.base, self.scale = base, float(scale)

    def loss(self, output, y):
        out = self.base.loss(output, y)
        return out if self.scale == 1.0 else out * self.scale

    def __getattr__(self, name):
        return getattr(self.base, name)


def validate(trainer: Any, device: torch.device) -> tuple[str, str]:
    strategy = str(trainer.get("strategy", "single"))
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy '{strategy}'. Allowed: {', '.join(STRATEGIES)}",
                          key="trainer.strategy")
    backend = str(trainer.get("backend", "auto"))
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'. Allowed: {', '.join(BACKENDS)}", key="trainer.backend")
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("nccl runs on GPUs, but this run's device is "
                          f"{device} (no usable GPU, or device=cpu); use backend=gloo or auto",
                          key="trainer.backend")
    return strategy, backend


@contextlib.contextmanager
def session(cfg: Any):
    """Join the process group for ``trainer.strategy=ddp`` (torchrun's env), leave it at the end.

    Yields the :class:`DataParallel` of this process, or None for a single-process run."""
    global _active
    from snnrun.engine.experiment import resolve_device

    device = resolve_device(cfg.get("device", "auto"))
    strategy, backend = validate(cfg.get("trainer") or {}, device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if strategy == "single":
        if world > 1:
            raise ConfigError(f"launched as {world} processes (torchrun) but trainer.strategy=single; "
                              "add trainer.strategy=ddp (or trainer=ddp)", key="trainer.strategy")
        yield None
        return
    rank, local_rank = env_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                              "use at most one process per GPU (--nproc_per_node)", key="trainer.strategy")
        torch.cuda.set_device(local_rank)  # 'cuda' below means this rank's GPU
        device = torch.device("cuda", local_rank)
    created = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
        created = True
    if rank != 0:
        from snnrun.run.console import console

        console.quiet = True  # one console: rank 0's
    _active = DataParallel(rank, world, local_rank, device)
    try:
        yield _active
    finally:
        _active = None
        if created:
            dist.destroy_process_group()


def from_rank_zero(dp: DataParallel | None, fn: Callable, *args) -> Any:
    """``fn(*args)`` evaluated on rank 0 and handed to every rank (errors included), e.g. reading
    the checkpoint to resume from: one reader, no shared filesystem needed between nodes."""
    if dp is None or dp.world == 1:
        return fn(*args)
    result, error = None, None
    if dp.rank == 0:
        try:
            result = fn(*args)
        except Exception as e:  # re-raised on every rank below
            error = e
    result, error = dp.broadcast_object((result, error))
    if error is not None:
        raise error
    return result
