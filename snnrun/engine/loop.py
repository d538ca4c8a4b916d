"""The training loop: one for every model and learner (learning-off passes: snnrun/engine/evaluation.py;
a saved run directory: snnrun/run/saved.py).

Per epoch, shuffled batches of the training split: the learners get the labels
(``begin_presentation``), then the batch is either presented with learning on (local rules learn
inside the simulation, every step) or, with a gradient learner, run forward and trained by one
optimiser step. Every ``trainer.assign_every`` samples (auto: max(250, 10 batches)) a metrics
line: running accuracy of the count-based decoders (with the label assignment of earlier
samples), the loss of a gradient learner, images/s. At each epoch end: the running label
assignment is kept, the validation split (``learner.val_fraction`` of a gradient learner) is
evaluated and the best epoch remembered, the learning-rate schedule steps, and a checkpoint is
written (also every ``trainer.checkpoint_every`` samples once ``trainer.checkpoint_min_s``
seconds have passed since the last, and on SIGINT/SIGTERM/SIGUSR2). After the epochs: the best
epoch's weights, a label-assignment pass with learning off (when a decoder assigns labels), the
test pass with every decoder, figures and summary.json.

Library code: it never reads ``hydra.*``; the CLI passes the run directory in.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from snnrun.components.decoders import LabelAssignment, Readout
from snnrun.data.augment import TrainingAugment
from snnrun.engine import data_parallel
from snnrun.engine.deferred import HostQueue
from snnrun.engine.diagnostics import LearningDiagnostics
from snnrun.engine.evaluation import evaluate, finish, label_pass, test_phase
from snnrun.engine.experiment import Experiment, build_experiment
from snnrun.engine.health import Health
from snnrun.engine.represent import Represent
from snnrun.errors import ConfigError, TrainingDiverged
from snnrun.run.checkpoint import (CHECKPOINT, CheckpointWriter, StopOnSignal, TrainingInterrupted, load_checkpoint,
                                   rng_state, set_rng_state)
from snnrun.run.console import PhaseProgress, console, write_json_atomic
from snnrun.run.files import write_text_atomic
from snnrun.run.metrics import open_metrics
from snnrun.run.plots import save_diagnostics_png
from snnrun.run.ranks import is_main
from snnrun.run.saved import FINISHED, finished_summary, git_commit, load_run_config, resume_point, versions

BEST_TIES = ("lower_loss", "later")  # trainer.best_ties: see improves()


def improves(best: dict, val_acc: float, val_loss: float | None, ties: str) -> bool:
    """Whether an epoch with validation accuracy ``val_acc`` (and loss ``val_loss``, None where
    the model has none) replaces ``best`` as the epoch kept. A higher accuracy always does; on a tie,
    ``lower_loss`` keeps the epoch with the lower validation loss (the earlier one if that ties too)
    and ``later`` the later epoch, as Fang et al.'s train_val.py (PLIF, ICCV 2021) selects with
    ``max_val_accuracy <= val_accuracy``."""
    if val_acc != best["val_accuracy"]:
        return val_acc > best["val_accuracy"]
    if ties == "later":
        return True
    return val_loss is not None and val_loss < best["val_loss"]


# -- training ----------------------------------------------------------------------------------
def diagnostics_for(exp: Experiment) -> LearningDiagnostics | None:
    """``trainer.diagnostics``: auto = on for models that learn by local rules and assign labels
    (competitive learning: Diehl & Cook); true/false."""
    flag = exp.cfg["trainer"].get("diagnostics", "auto")
    if flag not in ("auto", True, False):
        raise ConfigError(f"auto, true or false, got {flag!r}", key="trainer.diagnostics")
    local = bool(exp.network.learners) and exp.gradient is None and exp.assignment is not None
    on = local if flag == "auto" else bool(flag)
    return LearningDiagnostics(exp.network, exp.readout, exp.device) if on else None


@dataclass
class Progress:
    """Where training stands: everything besides the model a resumed run needs."""

    epoch: int = 1                      # current epoch (1-based)
    start: int = 0                      # index into this epoch's order of the next batch
    order: torch.Tensor | None = None   # this epoch's sample order
    samples: int = 0
    train_time: float = 0.0
    compile_time: float = 0.0          # of train_time: compiling and capturing new batch shapes (one-off)
    window_c: list = field(default_factory=list)  # counts/labels since the last running-accuracy line
    window_y: list = field(default_factory=list)
    loss_sum: float = 0.0               # gradient loss and correct predictions over this epoch
    correct: int = 0
    seen: int = 0
    best: dict = field(default_factory=lambda: {"epoch": 0, "val_accuracy": -1.0, "val_loss": float("inf"),
                                                "network": None})
    stage: str = "train"                # train -> trained (learning, best restore and label pass done)
    test_by_epoch: list = field(default_factory=list)  # trainer.test_every_epoch: each epoch's test accuracy

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "start": self.start, "order": self.order, "samples": self.samples,
                "train_time": self.train_time, "compile_time": self.compile_time, "stage": self.stage,
                "best": self.best,
                "loss_sum": self.loss_sum, "correct": self.correct, "seen": self.seen,
                "test_by_epoch": list(self.test_by_epoch),
                "window_c": torch.cat(self.window_c) if self.window_c else None,  # on the device: the
                "window_y": torch.cat(self.window_y) if self.window_y else None}  # checkpoint moves them

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> "Progress":
        p = cls(epoch=s["epoch"], start=s["start"], order=s["order"], samples=s["samples"],
                train_time=s["train_time"], compile_time=s.get("compile_time", 0.0),
                window_c=[s["window_c"]] if s["window_c"] is not None else [],
                window_y=[s["window_y"]] if s["window_y"] is not None else [])
        p.loss_sum, p.correct, p.seen = s.get("loss_sum", 0.0), s.get("correct", 0), s.get("seen", 0)
        p.best, p.stage = s["best"], s["stage"]
        p.test_by_epoch = list(s.get("test_by_epoch") or [])
        return p


class Trainer:
    """One run: the experiment, its run directory, metrics, checkpoints and progress."""

    on_start = None  # called once open() knows the run proceeds, before it writes into the run dir

    def __init__(self, cfg: DictConfig | dict, output_dir: str | Path, strategy=None):
        self.t_start = time.perf_counter()
        self.output_dir = Path(output_dir)
        self.exp = exp = build_experiment(cfg)
        self.strategy = strategy
        if strategy is not None:
            strategy.attach(exp)
        tr = exp.cfg["trainer"]
        self.epochs, self.bs = int(tr["epochs"]), int(tr["batch_size"])
        self.warmup_n, self.warmup_bs = int(tr.get("warmup_images", 0)), int(tr.get("warmup_batch_size", 16))
        self.ebs = int(tr.get("eval_batch_size", 256))
        self.assign_every = metrics_window(tr.get("assign_every", "auto"), self.bs)
        self.ckpt_every = int(tr.get("checkpoint_every") or 0)
        self.ckpt_min_s = float(tr.get("checkpoint_min_s", 0.0) or 0.0)
        self.do_label_pass = bool(tr.get("label_pass", True))
        self.test_every_epoch = bool(tr.get("test_every_epoch", False))
        self.best_ties = str(tr.get("best_ties", "lower_loss"))
        if self.best_ties not in BEST_TIES:
            raise ConfigError(f"which epoch is kept when validation accuracies tie: one of {', '.join(BEST_TIES)}, "
                              f"got {self.best_ties!r}", key="trainer.best_ties")
        again = Represent.from_config(tr, exp.encoder)  # trainer.represent_below (None: off)
        self.again = again if bool(tr.get("represent_learning", False)) else None  # ... while learning
        self.show = bool((exp.cfg.get("logger") or {}).get("progress", True))
        for k, v, low in (("epochs", self.epochs, 0), ("batch_size", self.bs, 1), ("eval_batch_size", self.ebs, 1),
                          ("warmup_images", self.warmup_n, 0), ("warmup_batch_size", self.warmup_bs, 1)):
            if v < low:
                raise ConfigError(f"expected a whole number >= {low}, got {v}", key=f"trainer.{k}")
        if self.warmup_n and exp.gradient is not None:
            raise ConfigError("a batch-size warm-up is for local learning rules; a gradient learner's schedule "
                              "counts batches of trainer.batch_size: set trainer.warmup_images=0",
                              key="trainer.warmup_images")
        if self.warmup_n and strategy is not None and self.warmup_bs < strategy.world:
            raise ConfigError(f"the warm-up batch is global too, split over the {strategy.world} processes: it must "
                              f"be >= {strategy.world}, got {self.warmup_bs}", key="trainer.warmup_batch_size")
        if self.ckpt_every < 0:
            raise ConfigError(f"a number of samples >= 0 (0: only at epoch ends), got {self.ckpt_every}",
                              key="trainer.checkpoint_every")
        if not self.ckpt_min_s >= 0:
            raise ConfigError(f"a number of seconds >= 0 (0: every checkpoint_every samples), got {self.ckpt_min_s}",
                              key="trainer.checkpoint_min_s")
        self.n_train = len(exp.train)
        if exp.gradient is not None:
            steps = (self.n_train + self.bs - 1) // self.bs
            exp.configure_gradient(epochs=self.epochs, steps_per_epoch=steps)
        self.order_gen = torch.Generator().manual_seed(int(exp.cfg["seed"]))
        self.augment = TrainingAugment(exp.data, int(exp.cfg["seed"]), exp.device)
        self.running = (LabelAssignment(exp.assignment.n_neurons, exp.assignment.n_classes, device=exp.device)
                        if exp.assignment is not None else None)
        self.prog = Progress()
        self.metrics = None
        self.health = Health(exp, strategy)  # NaN/inf checks, silent-readout counts
        # metrics lines, health checks and checkpoints are read from the device two batches late
        # (no host sync per batch); data-parallel runs check with collectives, so at once
        self.queue = HostQueue(exp.device, defer=strategy is None, lag=2)
        self.writer = CheckpointWriter(background=exp.device.type == "cuda")
        self.bar_extra: str | None = None  # the latest running metric, for the progress bar
        self.epoch_loss = float("nan")  # the gradient loss over the epoch so far, all ranks (log_window)
        if exp.cfg.get("init_from"):  # before the run dir exists: a misfit leaves nothing behind
            init_from_run(exp, exp.cfg["init_from"])
        self.diagnostics = diagnostics_for(exp)

    # -- the run directory ----------------------------------------------------------------
    def open(self) -> dict[str, Any] | None:
        """Create the run dir; resume from its checkpoint (``resume=true``); return the summary of a
        run that already finished, else None. Rank 0 reads and writes, every rank gets the answer."""
        exp, sp = self.exp, self.strategy
        if is_main():
            self.output_dir.mkdir(parents=True, exist_ok=True)
        saved = data_parallel.from_rank_zero(sp, resume_point, self.output_dir, exp.cfg)
        done = data_parallel.from_rank_zero(sp, finished_summary, self.output_dir, saved)
        if done is not None:
            console.print(f"[green]already finished[/]: {self.output_dir} (summary.json); nothing to resume")
            return done
        if self.on_start is not None:  # the run proceeds: the CLI keeps its .hydra files (snnrun.run.rundir)
            self.on_start()
        if is_main():
            write_text_atomic(self.output_dir / "resolved_config.yaml", OmegaConf.to_yaml(OmegaConf.create(exp.cfg)))
        self.saved = saved
        if saved is not None:
            exp.load_state_dict(saved)
            if self.running is not None and saved.get("running_assignment") is not None:
                self.running.load_state_dict(saved["running_assignment"])
            self.prog = Progress.from_state(saved["progress"])
            self.prog.window_c = [c.to(exp.device) for c in self.prog.window_c]  # joined by this run's batches
            self.prog.window_y = [y.to(exp.device) for y in self.prog.window_y]
            set_rng_state(saved["rng"], order=self.order_gen)
        self.metrics = open_metrics(exp.cfg.get("logger"), self.output_dir,
                                    resume_from=saved and saved["metrics"])
        return None

    def checkpoint(self, wait: bool = False) -> None:
        """Checkpoint the state of this instant. The state is snapshotted now (copies queued on
        the device); its finiteness check and the write follow when the host queue reaches it
        (two batches later, snnrun/engine/deferred.py) and the file is written by ``self.writer``.
        ``wait``: everything queued is done and the file is on disk before this returns."""
        progress = self.prog.state_dict()
        # what later batches update in place is snapshotted through the queue (device copies);
        # the rest is host data that is replaced, never updated in place (order, best, rng)
        live = {**self.exp.state_dict(),
                "running_assignment": None if self.running is None else self.running.state_dict(),
                "windows": {k: progress.pop(k) for k in ("window_c", "window_y")}}
        fixed = {"rng": rng_state(order=self.order_gen), "config": self.exp.cfg, "versions": versions(),
                 # kept for readers of older checkpoints / quick inspection
                 "epoch": self.prog.epoch, "samples": self.prog.samples}
        names, flags = self.health.state_flags()
        where = "before a checkpoint"

        def write(host):
            # never save non-finite state: checkpoint.pt stays the last good one
            self.healthy(where, lambda: self.health.check_flags(where, names, host["finite"]))
            state = dict(host["state"])
            state["progress"] = {**progress, **state.pop("windows")}
            # the metrics lines logged before this checkpoint are written by now (the queue keeps order)
            self.writer.submit(self.output_dir, {**state, **fixed, "metrics": self.metrics.position()})

        self.queue.put({"state": live, "finite": flags}, write)
        if wait:
            self.settle()

    def settle(self) -> None:
        """Run all deferred host work and wait for the checkpoint on its way to disk."""
        self.queue.run_all()
        self.writer.wait()

    def announce(self) -> None:
        exp, p = self.exp, self.prog
        what = (f"resuming epoch {p.epoch}, sample {p.start}" if self.saved is not None and p.stage == "train"
                else f"resuming after training ({p.stage})" if self.saved is not None else "")
        learners = ", ".join(getattr(l, "registered_name", type(l).__name__) for l in exp.learners.values())
        console.print(f"[bold]snnrun[/] {exp.cfg['model'].get('name', 'model')} on {exp.data.name} "
                      f"({self.n_train} train{f' / {len(exp.val)} val' if len(exp.val) else ''} / "
                      f"{len(exp.data.test)} test, T={exp.encoder.steps}), "
                      f"{learners or 'no learner'}, device {exp.device}, seed {exp.cfg['seed']}"
                      + (f"; [yellow]{what}[/]" if what else ""))
        if exp.input_rate is not None:
            console.print(f"input rate: intensity auto = {exp.input_rate['intensity']:.1f} Hz "
                          f"(mean ink {exp.input_rate['mean_ink']:.1f} per training image)")

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        done = self.open()
        if done is not None:
            return done
        exp, prog = self.exp, self.prog
        self.announce()
        sp = self.strategy
        try:
            with StopOnSignal(agree=sp.agree_signal if sp is not None else None) as stop:
                self.stop = stop
                if prog.stage == "train":
                    self.learn_epochs()
                    if prog.best["network"] is not None and len(exp.val):
                        exp.load_state_dict({}, network=prog.best["network"])
                    elif exp.gradient is not None and exp.gradient.average is not None:
                        exp.gradient.average.swap()  # no validation split: the averaged weights are the model
                    if self.do_label_pass:
                        label_pass(exp, self.ebs, self.metrics, self.show)
                    prog.stage = FINISHED
                    self.checkpoint(wait=True)
                    self.interrupted()
                results = test_phase(exp, self.show)
                self.interrupted()  # the finished checkpoint is the resume point: the test phase reruns
            self.metrics.log(phase="test", **{k: v for k, v in results.items() if not k.startswith("_")})
        except BaseException:
            self.queue.clear()  # after an error the deferred lines and checkpoints are dropped ...
            raise
        finally:
            # ... but one already handed to the writer is completed: close() writes it and ends the
            # thread without raising (after an error, the error in flight is the one to report)
            self.writer.close()
            self.metrics.close()
        return self.summarise(results)

    def interrupted(self) -> None:
        if self.stop.requested:
            self.settle()  # the last checkpoint is on disk before the run says how to resume it
            raise TrainingInterrupted(self.stop.signum, self.output_dir)

    def learn_epochs(self) -> None:
        exp, prog = self.exp, self.prog
        train_x, train_y = exp.train.x.to(exp.device), exp.train.y.to(exp.device)  # batches gathered there
        self.healthy("input", self.health.check_input)
        last_ckpt, last_ckpt_t = prog.samples, time.monotonic()
        queue = self.queue
        while prog.epoch <= self.epochs:
            exp.network.train()
            if prog.order is None:
                prog.order = torch.randperm(self.n_train, generator=self.order_gen)
                prog.loss_sum, prog.correct, prog.seen = 0.0, 0, 0
            order = prog.order.to(exp.device)
            loss_sum = torch.zeros((), device=exp.device, dtype=torch.float64)  # summed on the device: no
            correct = torch.zeros((), device=exp.device, dtype=torch.long)      # host sync per batch
            with PhaseProgress(f"epoch {prog.epoch}/{self.epochs}", self.n_train, self.show) as bar:
                if prog.start:  # resumed mid-epoch
                    bar.progress.update(bar.task, completed=prog.start)
                base_time, base_compile, captured = prog.train_time, prog.compile_time, exp.capture_s
                while prog.start < self.n_train:
                    idx = order[prog.start:prog.start + self.batch_at(prog.samples)]
                    xb, yb = self.augment(train_x[idx], prog.samples), train_y[idx]
                    counts = self.train_batch(xb, yb, loss_sum, correct)
                    self.health.count_silent(counts)  # on the device; read at the epoch end
                    if self.diagnostics is not None:
                        self.diagnostics.observe(counts)
                    if self.running is not None:
                        prog.window_c.append(counts)
                        prog.window_y.append(yb)
                    prog.samples += len(idx)
                    prog.start += len(idx)
                    prog.seen += len(idx)
                    window_full = self.running is not None and \
                        sum(len(y) for y in prog.window_y) >= self.assign_every
                    if window_full or prog.start >= self.n_train:
                        self.log_window(bar, loss_sum, correct)
                    # this batch is queued on the device: now the host work of earlier ones
                    queue.next_batch()
                    queue.run_ready()
                    bar.advance(len(idx), self.bar_extra)
                    self.bar_extra = None
                    prog.train_time = base_time + bar.elapsed
                    prog.compile_time = base_compile + exp.capture_s - captured
                    if prog.start >= self.n_train:
                        break  # the epoch-end checkpoint below covers this point
                    stopping = self.stop.requested
                    # periodic: after checkpoint_every samples and checkpoint_min_s seconds (a fast
                    # run would otherwise copy and write its whole state every few batches)
                    if stopping or (self.ckpt_every and prog.samples - last_ckpt >= self.ckpt_every
                                    and time.monotonic() - last_ckpt_t >= self.ckpt_min_s):
                        self.sync_sums(loss_sum, correct)
                        self.checkpoint(wait=stopping)
                        last_ckpt, last_ckpt_t = prog.samples, time.monotonic()
                        if stopping:
                            raise TrainingInterrupted(self.stop.signum, self.output_dir)
                queue.run_all()  # the epoch's last lines: the device has finished the epoch
                prog.train_time = base_time + bar.elapsed
            self.sync_sums(loss_sum, correct)
            self.end_epoch(bar.elapsed)
            prog.epoch, prog.start, prog.order = prog.epoch + 1, 0, None
            self.checkpoint()
            last_ckpt = prog.samples
            self.interrupted()
        self.settle()

    def batch_at(self, samples: int) -> int:
        """The batch size after ``samples`` training images of the run (``trainer.warmup_images``)."""
        return self.warmup_bs if samples < self.warmup_n else self.bs

    def healthy(self, where: str, check=None) -> None:
        """Run a health check (default: the state is finite); a finding stops the run with a
        :class:`TrainingDiverged` that says the last good checkpoint is kept."""
        try:
            check() if check is not None else self.health.check_state(where)
        except TrainingDiverged as e:
            try:
                self.writer.wait()  # a good checkpoint still on its way to disk is the one kept
            except Exception:
                pass
            kept = (f"; the last good checkpoint is kept: {self.output_dir / CHECKPOINT}"
                    if (self.output_dir / CHECKPOINT).is_file() else "; no checkpoint was written")
            e.message += kept
            raise

    def sync_sums(self, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
        """Move the device-side epoch sums into the progress record (one host sync; none for
        local rules, which leave them at zero)."""
        if self.exp.gradient is None:
            return
        self.prog.loss_sum += float(loss_sum)
        self.prog.correct += int(correct)
        loss_sum.zero_()
        correct.zero_()
        if self.strategy is None:  # data-parallel: the summed loss (log_window)
            self.healthy("loss", lambda: self.health.check_loss(self.prog.loss_sum, "training loss"))

    def train_batch(self, xb: torch.Tensor, yb: torch.Tensor, loss_sum: torch.Tensor,
                    correct: torch.Tensor) -> torch.Tensor:
        """Learn from one batch; return its readout counts (B, n)."""
        exp, sp = self.exp, self.strategy
        exp.begin_presentation(yb if sp is None else yb[sp.shard(len(yb))])
        if exp.gradient is None:
            r = exp.present(xb)
            if self.again is not None:  # trainer.represent_learning: quiet samples again, learning
                r = self.again(exp.present, xb, r, before=lambda: exp.begin_presentation(
                    yb if sp is None else yb[sp.shard(len(yb))]))
            return r.counts
        loss, out = exp.gradient_step(xb, yb)
        y_rows = yb if sp is None else yb[sp.rows]
        loss_sum += loss.detach().double() * len(y_rows)
        correct += (exp.gradient.loss.predict(out).detach() == y_rows).sum()
        counts = out["out"].detach().sum(0)
        return counts if sp is None else sp.gather_rows(counts, len(yb))

    def log_window(self, bar, loss_sum, correct) -> None:
        """A metrics line: running accuracy of the count-based decoders with the labels assigned
        from earlier samples, then the window's counts update the running assignment. Computed on
        the device now; the line is written two batches later."""
        exp, prog = self.exp, self.prog
        record: dict[str, Any] = {"phase": "train", "epoch": prog.epoch, "samples": prog.samples}
        values: dict[str, Any] = {}
        if self.running is not None and prog.window_c:
            c, y = torch.cat(prog.window_c), torch.cat(prog.window_y)
            values["assigned"] = self.running.rates.sum() > 0  # no accuracy before any label is known
            # decoded whether or not (read later, without a sync); before the first update the
            # assignment is -1 everywhere, which one_hot refuses: clamped (then not reported)
            labels = copy.copy(self.running)
            labels.assignments = self.running.assignments.clamp(min=0)
            r = Readout(counts=c, dt=exp.network.dt, steps=exp.encoder.steps)
            values["acc"] = {name: (d.predict(r, labels, exp.n_classes) == y).float().mean()
                             for name, d in exp.decoders.items() if d.needs <= {"assignment"}}
            self.running.update(c, y, alpha=1.0)
            prog.window_c, prog.window_y = [], []
            record["running_accuracy"] = {}
        extra = None
        if exp.gradient is not None:
            self.sync_sums(loss_sum, correct)
            seen = max(prog.seen, 1)
            if self.strategy is not None:  # the epoch's loss and accuracy over all ranks' shares
                tot_loss, tot_correct = self.strategy.sum_(prog.loss_sum, prog.correct)
            else:
                tot_loss, tot_correct = prog.loss_sum, prog.correct
            self.healthy("loss", lambda: self.health.check_loss(tot_loss, "training loss"))
            record.update(loss=tot_loss / seen, train_accuracy=tot_correct / seen, lr=exp.gradient.lr)
            self.epoch_loss = record["loss"]
            extra = f"loss {record['loss']:.4f}"
        if self.diagnostics is not None:
            values["diagnostics"] = self.diagnostics.window()
        record["images_per_s"] = round(bar.images_per_s, 2)
        # the state is checked before every checkpoint and at epoch ends; at windows only when
        # no periodic checkpoint does it (its ~3 small kernels per tensor would run every batch)
        check = self.ckpt_every == 0
        names, values["finite"] = self.health.state_flags() if check else ([], None)
        where = f"at sample {prog.samples}"

        def write(host):
            nonlocal extra
            if "acc" in host:
                acc = {k: float(v) for k, v in host["acc"].items()} if bool(host["assigned"]) else {}
                record["running_accuracy"] = acc
                if acc and extra is None:
                    extra = f"acc {max(acc.values()):.3f}"
            if "diagnostics" in host:
                record["diagnostics"] = LearningDiagnostics.summary(host["diagnostics"])
            self.metrics.log(**record)
            self.bar_extra = extra
            if check:
                self.healthy(where, lambda: self.health.check_flags(where, names, host["finite"]))

        self.queue.put(values, write)

    def end_epoch(self, epoch_time: float) -> None:
        exp, prog = self.exp, self.prog
        self.healthy(f"after epoch {prog.epoch}")
        silent = self.health.end_epoch()
        if silent:
            console.print(f"[bold yellow]warning:[/] epoch {prog.epoch}: {silent}", soft_wrap=True)
        if self.running is not None:
            exp.assignment.load_state_dict(self.running.state_dict())
        line = f"epoch {prog.epoch}"
        with exp.evaluation_weights():  # learner ema: validated and tested on the averaged weights
            val_loss, line = self.evaluate_epoch(line)
        for learner in exp.learners.values():
            learner.end_epoch(val_loss)
        if exp.gradient is not None:
            # the epoch's last metrics line summed every rank's share (prog.loss_sum is this rank's)
            line += f", loss {self.epoch_loss:.4f}, lr {exp.gradient.lr:.2e}"
        console.print(line + f" ({self.n_train / max(epoch_time, 1e-9):.0f} images/s)")

    def evaluate_epoch(self, line: str) -> tuple[float | None, str]:
        """Validation (keeping the best epoch's network) and, with ``trainer.test_every_epoch``, the
        test split; returns the validation loss and the epoch's console line."""
        exp, prog = self.exp, self.prog
        val_loss = None
        if len(exp.val):
            ev = evaluate(exp, exp.val, self.ebs)
            first = next(iter(exp.decoders))
            val_acc = ev.accuracy(exp.val.y)[first]
            val_loss = ev.loss if ev.loss is not None else float("nan")
            if ev.loss is not None:
                self.healthy("validation", lambda: self.health.check_loss(ev.loss, "validation loss"))
            better = improves(prog.best, val_acc, val_loss if ev.loss is not None else None, self.best_ties)
            if better:
                prog.best = {"epoch": prog.epoch, "val_accuracy": val_acc, "val_loss": val_loss,
                             "network": {k: v.detach().cpu().clone() for k, v in exp.network.state_dict().items()}}
            self.metrics.log(phase="val", epoch=prog.epoch, samples=prog.samples, val_accuracy=val_acc,
                             val_loss=val_loss, best_epoch=prog.best["epoch"])
            line += f": val {val_acc:.4f}" + (" [green]best[/]" if better else "")
        else:
            prog.best["epoch"] = prog.epoch
        if self.test_every_epoch:  # the test split after every epoch (papers that report the best epoch)
            ev = evaluate(exp, exp.data.test, self.ebs)
            acc = max(ev.accuracy(exp.data.test.y).values())
            prog.test_by_epoch.append(acc)
            self.metrics.log(phase="epoch_test", epoch=prog.epoch, samples=prog.samples, test_accuracy=acc)
            line += f", test {acc:.4f}"
        return val_loss, line

    def summarise(self, results: dict[str, Any]) -> dict[str, Any]:
        exp, prog = self.exp, self.prog
        results = finish(exp, self.output_dir, results)
        summary = {**results, **run_facts(exp, t_start=self.t_start, samples=prog.samples,
                                          train_time=prog.train_time, compile_time=prog.compile_time,
                                          n_train=self.n_train, epochs=self.epochs,
                                          resumed=self.saved is not None, n_val=len(exp.val))}
        summary["best_epoch"] = prog.best["epoch"]
        summary["val_accuracy"] = prog.best["val_accuracy"] if len(exp.val) else None
        if prog.test_by_epoch:  # trainer.test_every_epoch: a paper's "best epoch" figure, beside the selected one
            summary["test_accuracy_by_epoch"] = prog.test_by_epoch
            summary["best_epoch_test_accuracy"] = max(prog.test_by_epoch)
        summary["learners"] = {n: getattr(l, "registered_name", type(l).__name__) for n, l in exp.learners.items()}
        if exp.input_rate is not None:
            summary["input_rate"] = exp.input_rate
        summary["warnings"] = self.health.warnings(summary)
        for w in summary["warnings"]:
            console.print(f"[bold yellow]warning:[/] {w}", soft_wrap=True)
        write_json_atomic(self.output_dir / "summary.json", summary)
        if self.diagnostics is not None and is_main():
            write_json_atomic(self.output_dir / "diagnostics.json", self.diagnostics.finish())
            save_diagnostics_png(self.output_dir / "metrics.jsonl", self.output_dir / "diagnostics.png")
        console.print(f"[green]done[/] in {summary['wall_s']:.1f} s: test_accuracy "
                      f"{summary['test_accuracy']:.4f} ({summary['best_decoder']}); outputs in {self.output_dir}")
        return summary


def metrics_window(value: Any, batch_size: int) -> int:
    """``trainer.assign_every``: samples per metrics line (running accuracy, label update,
    diagnostics). ``auto`` = max(250, 10 batches): each line costs the host tens of small
    kernel launches, and at GPU batch sizes one line per batch leaves the device waiting on the
    host (README, "Whole runs")."""
    if value == "auto" or value is None:
        return max(250, 10 * int(batch_size))
    try:
        n = int(value)
        ok = n == float(value) and n >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"a whole number of samples >= 1, or auto (max(250, 10 x trainer.batch_size)); "
                          f"got {value!r}", key="trainer.assign_every")
    return n


def init_from_run(exp: Experiment, run_dir: str | Path) -> None:
    """``init_from=RUN_DIR``: start from another run's trained network (weights, batch-norm
    statistics, adaptive thresholds, learned time constants), whatever else its config said.
    The optimiser, label assignment and training position start afresh (unlike ``resume``); every
    tensor must fit by name and shape, else ConfigError naming them and nothing is loaded."""
    from snnrun.engine.experiment import state_misfit

    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        raise ConfigError(f"no checkpoint in {run_dir} (a run directory written by snnrun train)", key="init_from")
    saved = load_checkpoint(run_dir, fallback=False).get("network")
    if not isinstance(saved, dict):
        raise ConfigError(f"{run_dir / CHECKPOINT} holds no network state", key="init_from")
    misfit = state_misfit(saved, exp.network.state_dict(), show=5)
    if misfit:
        raise ConfigError(f"the weights of {run_dir} do not fit this model: " + "; ".join(misfit), key="init_from")
    with torch.no_grad():
        exp.network.load_state_dict(saved)
    exp.runner.reset()


def train(cfg: DictConfig | dict, output_dir: str | Path, on_start=None) -> dict[str, Any]:
    """Train and evaluate the configured model; write metrics, checkpoints, summary and figures.

    ``resume=true`` continues the run in ``output_dir`` from its last checkpoint (same RNG
    stream, metrics appended without duplicates). SIGINT/SIGTERM write a checkpoint and raise
    :class:`~snnrun.errors.TrainingInterrupted`. ``trainer.strategy=ddp`` under torchrun runs
    data-parallel (:mod:`snnrun.engine.data_parallel`). ``on_start()`` is called once the run is
    known to proceed (built, resume checks passed), before anything is written into ``output_dir``.
    """
    with data_parallel.session(cfg) as strategy:
        trainer = Trainer(cfg, output_dir, strategy)
        trainer.on_start = on_start
        return trainer.run()


def run_facts(exp, *, t_start: float, samples: int, train_time: float, n_train: int, epochs: int,
              resumed: bool, compile_time: float = 0.0, **extra: Any) -> dict[str, Any]:
    """The summary.json keys every run writes besides its results (``extra`` after n_train).
    ``train_steady_images_per_s`` leaves out the one-off compile and CUDA-graph capture of each
    batch shape (``train_compile_s``), as ``snnrun bench`` leaves out its first call."""
    steady = train_time - compile_time
    return {
        "train_images_per_s": samples / train_time if train_time > 0 else None,
        "train_steady_images_per_s": samples / steady if steady > 0 else None,
        "train_compile_s": compile_time,
        "train_samples": samples,
        "n_train": n_train,
        **extra,
        "epochs": epochs,
        "wall_s": time.perf_counter() - t_start,
        "device": str(exp.device),
        "seed": int(exp.cfg["seed"]),
        "model": exp.cfg["model"].get("name"),
        "dataset": exp.data.name,
        "resumed": resumed,
        "versions": versions(),
        "git_commit": git_commit(),
    }


def resume_run(run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """``snnrun resume run_dir=DIR``: continue a stopped run with its own saved config.

    Only keys in RESUMABLE_CHANGES (device, logger, checkpoint cadence ...) may be overridden.
    """
    cfg = load_run_config(run_dir, [*(overrides or []), "resume=true"])
    return train(cfg, run_dir)
