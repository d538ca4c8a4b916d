"""Data-parallel training over torch.distributed: ``trainer.strategy=ddp`` under ``torchrun``.

One run, N processes (one per GPU; gloo on CPU). ``trainer.batch_size`` is the *global* batch:
each rank takes a contiguous share of every global batch, so a run learns the same with any
number of processes (up to float summation order). What is reduced across ranks:

- a gradient learner: gradients (DistributedDataParallel; BatchNorm becomes SyncBatchNorm on
  GPUs) and the epoch's loss/accuracy;
- local rules (every registered rule): each rank simulates its share of the batch -- per-sample
  state (traces, eligibility, the tempotron's PSPs) stays with its rows, labels are the rank's
  rows -- and the batch-summed quantities are all-reduced, so every rank holds the same weights
  at every step. Two ways, chosen by the rule (``LearningRule.reduces_batch``):

  * an update that is a batch sum (the STDP family, conv2d_stdp, MSTDP, MSTDPET, the tempotron):
    :meth:`DataParallel.reduced_update` reads it back as the change of the weights (at each step
    and at the end of a presentation), rescales ``reduction: mean`` to the global batch and sums
    the ranks' changes;
  * an update that is not linear in the batch sum (post_pre_int floors it, reward_switch_stdp
    splits it by its sign): the rule sums its batch quantity over the ranks itself
    (``LearningRule.batch_total``, ``batch_size`` for the global divisor) and applies the global
    update on every rank;

  plus adaptive-threshold increments (``batch_sum``) and post_pre's 'owner' claims
  (:meth:`DataParallel.claim`: the first sample of the *global* batch). A reward given for the
  whole batch (``external``) is cut to the rank's rows (:meth:`DataParallel.rows_of`). A rank may
  have no rows (a last batch smaller than the world): it still takes part in every collective;
- the readout of every batch (counts, and the trains a decoder reads) is all-gathered, so label
  assignment, running, validation and test accuracy are those of the whole batch / split.

The strategy is an explicit object: :meth:`DataParallel.attach` hands it to the experiment, which
hands it to the network's groups and rules (``use_strategy``); they call it where a batch-shared
quantity is formed (``batch_sum``, ``batch_rand_like``, a rule's ``step``/``batch_total``, ``claim``).

Random streams stay rank-independent: every rank seeds the same generators and draws the
random numbers of the *whole* global batch (Poisson spikes, D&C's one-spike choice), then keeps
its rows, so a sample's spikes do not depend on the rank that simulates it.

Rank 0 alone writes files and prints; see :func:`rank_zero_only`. Hydra's own outputs are
silenced on the other ranks by the CLI (``snnrun/cli.py``).

Tested by tests/test_distributed.py: whole runs (diehl_cook, snn_mlp, resume) and, in one
torchrun launch (tests/ddp_rules_driver.py), every registered learner against one process.
"""

from __future__ import annotations

import contextlib
import gc
import os
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from snnrun.errors import ConfigError
from snnrun.run.ranks import env_rank

STRATEGIES = ("single", "ddp")
BACKENDS = ("auto", "nccl", "gloo")

_active: "DataParallel | None" = None


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

    def rows_of(self, t: torch.Tensor, local: int) -> torch.Tensor:
        """This rank's rows of a per-sample tensor of the whole batch (leading dimension the global
        batch size, e.g. an external reward); a tensor of this rank's ``local`` rows, or one that
        broadcasts over samples, is returned as it is."""
        if self.world == 1 or t.dim() == 0 or local == self.global_n or t.shape[0] != self.global_n:
            return t
        return t[self.rows]

    def _size(self, n: int, rank: int) -> int:
        base, extra = divmod(n, self.world)
        return base + (rank < extra)

    def agree_signal(self, signum: int | None) -> int | None:
        """The stop signal any rank received (so that every rank stops at the same batch)."""
        if self.world == 1:
            return signum
        flag = self.all_reduce_(torch.tensor([signum or 0], device=self.comm_device), dist.ReduceOp.MAX)
        return signum or int(flag) or None

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
    def reduced_update(self, rule, update=None) -> None:
        """Run ``rule.update()`` (or ``update``) on this rank's samples; apply the sum of all ranks' updates.

        The update is read back as the change of the weights, so any rule whose batch
        reduction is a sum (or 'mean', rescaled to the global batch) works unchanged."""
        w = rule.connection.w
        before = w.detach().clone()
        (update or rule.update)()
        local = self.rows.stop - self.rows.start
        with torch.no_grad():
            w.sub_(before)
            if not local:  # no rows here (a last batch smaller than the world): nothing to add
                w.zero_()  # (a 'mean' over no samples is 0/0)
            elif rule.reduction == "mean" and self.global_n:
                w.mul_(local / self.global_n)
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
        """``PostPreSTDP.claim`` across ranks (the rule asks its strategy): ``rule.owner`` holds the *local* row of each
        neuron's owner, -1 where the owner is on another rank (its rows add nothing here)."""
        owner = self._claim_global(rule, s_post)
        local = owner - self.rows.start
        rule.owner = torch.where((owner >= 0) & (local < s_post.shape[0]) & (local >= 0), local, -1)

    def check_batch(self, exp) -> None:
        bs = int(exp.cfg["trainer"]["batch_size"])
        if bs < self.world:
            raise ConfigError(f"trainer.batch_size is the global batch, split over the {self.world} processes; "
                              f"it must be >= {self.world}, got {bs}", key="trainer.batch_size")

    def attach(self, exp) -> None:
        """Hand this strategy to an experiment: the network's groups and local rules reduce their
        batch-shared quantities through it, the experiment shards and gathers batches through it,
        and a gradient learner trains a DistributedDataParallel wrapper of the network
        (SyncBatchNorm on GPUs unless ``trainer.sync_batchnorm=false``: batch statistics of the
        global batch, as in one process)."""
        self.check_batch(exp)
        # post_pre options that keep batch-wide state in one process (stdp.py)
        single_process = {"baseline": ("none", "keeps one running mean of the inputs"),
                          "overflow": ("none", "places a batch's samples on free neurons"),
                          "owner_by": ("first_spike", "ranks a batch's samples by their spike counts")}
        for name, rule in exp.network.learners.items():
            for key, (default, what) in single_process.items():
                value = getattr(rule, key, default)
                if value != default and self.world > 1:
                    raise ConfigError(f"learner '{name}': {key}: {value} {what} within one process and is not split "
                                      f"across processes; use {key}: {default} with more than one process", key=key)
        exp.strategy = self
        exp.network.use_strategy(self)
        # collectives run eagerly every step: no torch.compile'd step, no captured CUDA graph
        exp.network.uncompile_step()
        exp.runner.enabled = False
        if exp.gradient is None or self.world == 1:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        if exp.device.type == "cuda" and bool(exp.cfg["trainer"].get("sync_batchnorm", True)):
            # exact global-batch statistics, at the price of collectives inside every forward
            # and backward pass; sync_batchnorm=false keeps per-GPU statistics (faster)
            exp.network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(exp.network)
        exp.trained = DDP(exp.network, device_ids=[self.local_rank] if exp.device.type == "cuda" else None)

    def loss_scale(self) -> float:
        """Factor on this rank's mean loss so DDP's gradient average is the global batch mean
        (1 when the shares are equal)."""
        local = self.rows.stop - self.rows.start
        return self.world * local / self.global_n if self.global_n else 1.0

    def sum_(self, *values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        return self.all_reduce_(t).tolist()

    @property
    def comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


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
            # DistributedDataParallel wrappers left in reference cycles hold the group's backend;
            # freed at interpreter exit, after the group, gloo's threads abort the process
            gc.collect()
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
