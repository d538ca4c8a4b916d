"""The training loop for local-learning models, test evaluation, and re-evaluation of a run.

Phases: (1) learning epochs with periodic label assignment (running accuracy, as in BindsNET's
eth_mnist example), (2) a label-assignment pass over the training set with learning off,
(3) test evaluation with every decoder. Library code: it never reads ``hydra.*``; the CLI
passes the run directory in.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import snnrun
from snnrun.engine import data_parallel as distributed
from snnrun.run.checkpoint import (CHECKPOINT, PREVIOUS, StopOnSignal, TrainingInterrupted, load_checkpoint,
                               rng_state, save_checkpoint, set_rng_state)
from snnrun.components.decoders import LabelAssignment
from snnrun.config import config_dir
from snnrun.errors import ConfigError
from snnrun.engine.experiment import Experiment, build_experiment
from snnrun.components.learning.reward import set_labels
from snnrun.run.metrics import open_metrics
from snnrun.run.console import PhaseProgress, console, results_table, write_json_atomic
from snnrun.run.plots import confusion_matrix, save_confusion_png, save_weights_png

EVAL_SEED_OFFSET = 1_000_003  # test-time randomness has its own stream: `snnrun eval` replays it


def versions() -> dict[str, str]:
    import hydra

    return {"snnrun": snnrun.__version__, "torch": torch.__version__, "hydra": hydra.__version__,
            "python": platform.python_version()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def test_phase(exp: Experiment, show_progress: bool) -> dict[str, Any]:
    """Evaluate on the test split with learning off. Seeded so re-evaluation gives the same numbers."""
    exp.network.eval()
    seed = int(exp.cfg.get("seed", 0)) + EVAL_SEED_OFFSET
    torch.manual_seed(seed)
    test = exp.data.test
    bs = int(exp.cfg["trainer"].get("eval_batch_size", 256))
    with PhaseProgress("test", len(test), show_progress) as bar:
        counts = exp.collect_counts(test, bs, bar)
    preds = exp.predict(counts)
    per_decoder = {name: {"test_accuracy": float((p == test.y).float().mean())} for name, p in preds.items()}
    best = max(per_decoder, key=lambda k: per_decoder[k]["test_accuracy"])
    return {"test_accuracy": per_decoder[best]["test_accuracy"], "best_decoder": best,
            "decoders": per_decoder, "n_test": len(test), "test_images_per_s": bar.images_per_s,
            "silent_test_samples": int((counts.sum(1) == 0).sum()), "_preds": preds[best]}


def finish(exp: Experiment, output_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Figures and the results table; returns the results without private keys."""
    preds = results.pop("_preds")
    cm = confusion_matrix(exp.data.test.y, preds, exp.data.n_classes)
    results["confusion"] = cm.tolist()  # rows: true class; `snnrun report` redraws it from summary.json
    save_confusion_png(cm, output_dir / "confusion.png",
                       f"test, {results['best_decoder']}: accuracy {results['test_accuracy']:.3f}")
    rows = {name: r for name, r in results["decoders"].items()}
    console.print(results_table(f"test accuracy ({results['n_test']} samples)", rows, ["test_accuracy"]))
    return results


@dataclass
class Progress:
    """Where the learning epochs stand: everything besides the model a resumed run needs."""

    epoch: int = 1                      # current epoch (1-based)
    start: int = 0                      # index into this epoch's order of the next batch
    order: torch.Tensor | None = None   # this epoch's sample order
    samples: int = 0
    train_time: float = 0.0
    window_c: list = field(default_factory=list)  # counts/labels since the last label update
    window_y: list = field(default_factory=list)
    stage: str = "train"                # train -> labelled (learning and label pass done)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "start": self.start, "order": self.order, "samples": self.samples,
                "train_time": self.train_time, "stage": self.stage,
                "window_c": torch.cat(self.window_c) if self.window_c else None,
                "window_y": torch.cat(self.window_y) if self.window_y else None}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> "Progress":
        return cls(s["epoch"], s["start"], s["order"], s["samples"], s["train_time"],
                   [s["window_c"]] if s["window_c"] is not None else [],
                   [s["window_y"]] if s["window_y"] is not None else [], s["stage"])


class Checkpointer:
    """Writes this loop's checkpoints: model, label statistics, progress, RNG streams, metrics position."""

    def __init__(self, exp: Experiment, output_dir: Path, metrics, running: LabelAssignment,
                 order_gen: torch.Generator):
        self.exp, self.output_dir, self.metrics = exp, output_dir, metrics
        self.running, self.order_gen = running, order_gen

    def __call__(self, prog: Progress) -> None:
        save_checkpoint(self.output_dir, {
            **self.exp.state_dict(), "running_assignment": self.running.state_dict(),
            "progress": prog.state_dict(), "rng": rng_state(order=self.order_gen),
            "metrics": self.metrics.position(), "config": self.exp.cfg, "versions": versions(),
            # kept for readers of older checkpoints / quick inspection
            "epoch": prog.epoch, "samples": prog.samples})


def train(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any]:
    """Train and evaluate the configured model; write metrics, checkpoints, summary and figures.

    ``resume=true`` continues the run in ``output_dir`` from its last checkpoint (same RNG
    stream, metrics appended without duplicates). SIGINT/SIGTERM write a checkpoint and raise
    :class:`~snnrun.run.checkpoint.TrainingInterrupted`.
    """
    from snnrun.engine.gradient_loop import is_gradient_config, train_gradient

    with distributed.session(cfg) as dp:  # trainer.strategy=ddp under torchrun: snnrun/engine/data_parallel.py
        if is_gradient_config(cfg):  # model.layers + a gradient model.learner: snnrun/engine/gradient_loop.py
            return train_gradient(cfg, output_dir, dp)
        return _train_local(cfg, output_dir, dp)


def _train_local(cfg: DictConfig, output_dir: str | Path, dp=None) -> dict[str, Any]:
    t_start = time.perf_counter()
    output_dir = Path(output_dir)
    exp = build_experiment(cfg)
    if dp is not None:
        dp.attach_local_learning(exp)
    saved, done = open_run(output_dir, exp.cfg, dp, finished_stage="labelled")
    if done is not None:
        return done
    tr = exp.cfg["trainer"]
    epochs, bs = int(tr["epochs"]), int(tr["batch_size"])
    assign_every = int(tr.get("assign_every", 250))
    ckpt_every = int(tr.get("checkpoint_every") or 0)
    show = bool((exp.cfg.get("logger") or {}).get("progress", True))
    if epochs < 0 or bs < 1:
        raise ConfigError(f"need epochs >= 0 and batch_size >= 1, got {epochs} and {bs}", key="trainer")
    if ckpt_every < 0:
        raise ConfigError(f"a number of samples >= 0 (0: only at epoch ends), got {ckpt_every}",
                          key="trainer.checkpoint_every")
    train_split = exp.data.train
    n_train = len(train_split)

    order_gen = torch.Generator().manual_seed(int(exp.cfg["seed"]))
    running = LabelAssignment(exp.assignment.n_neurons, exp.assignment.n_classes, device=exp.device)
    prog = Progress()
    if saved is not None:
        exp.load_state_dict(saved)
        running.load_state_dict(saved["running_assignment"])
        prog = Progress.from_state(saved["progress"])
        set_rng_state(saved["rng"], order=order_gen)
    metrics = open_metrics(exp.cfg.get("logger"), output_dir, resume_from=saved and saved["metrics"])
    checkpoint = Checkpointer(exp, output_dir, metrics, running, order_gen)
    what = (f"resuming epoch {prog.epoch}, sample {prog.start}" if saved is not None and prog.stage == "train"
            else f"resuming after training ({prog.stage})" if saved is not None else "")
    console.print(f"[bold]snnrun[/] {exp.cfg['model'].get('name', 'model')} on {exp.data.name} "
                  f"({n_train} train / {len(exp.data.test)} test), device {exp.device}, seed {exp.cfg['seed']}"
                  + (f"; [yellow]{what}[/]" if what else ""))

    try:
        with StopOnSignal() as stop:
            if prog.stage == "train":
                learn_epochs(exp, prog, epochs, bs, assign_every, ckpt_every, metrics, running, order_gen,
                             checkpoint, stop, show)
                label_pass(exp, tr, metrics, show)
                prog.stage = "labelled"
                checkpoint(prog)
                if stop.requested:
                    raise TrainingInterrupted(stop.signum, output_dir)
            results = test_phase(exp, show)
            if stop.requested:  # the labelled checkpoint is the resume point: the test phase reruns
                raise TrainingInterrupted(stop.signum, output_dir)
        metrics.log(phase="test", **{k: v for k, v in results.items() if not k.startswith("_")})
    finally:
        metrics.close()

    results = finish(exp, output_dir, results)
    readout_in = [c for c in exp.network.connections.values()
                  if c.target == exp.readout and c.source == exp.input_group]
    if readout_in:
        save_weights_png(readout_in[0].w, exp.data.shape, output_dir / "weights.png",
                         f"{readout_in[0].source} -> {readout_in[0].target} receptive fields")
    summary = {**results, **run_facts(exp, t_start=t_start, samples=prog.samples, train_time=prog.train_time,
                                      n_train=n_train, epochs=epochs, resumed=saved is not None)}
    write_json_atomic(output_dir / "summary.json", summary)
    console.print(f"[green]done[/] in {summary['wall_s']:.1f} s: test_accuracy "
                  f"{summary['test_accuracy']:.4f} ({summary['best_decoder']}); outputs in {output_dir}")
    return summary


def run_facts(exp, *, t_start: float, samples: int, train_time: float, n_train: int, epochs: int,
              resumed: bool, **extra: Any) -> dict[str, Any]:
    """The summary.json keys every training loop writes besides its results (``extra`` are a
    loop's own keys, placed after n_train)."""
    return {
        "train_images_per_s": samples / train_time if train_time > 0 else None,
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


def open_run(output_dir: Path, cfg: dict[str, Any], dp, finished_stage: str):
    """Create the run dir and return (checkpoint to resume from or None, summary if the run
    already finished or None); write resolved_config.yaml for a run that goes on. Rank 0 reads
    and writes, every rank gets the answer."""
    if distributed.is_main():
        output_dir.mkdir(parents=True, exist_ok=True)
    saved = distributed.from_rank_zero(dp, resume_point, output_dir, cfg)
    done = distributed.from_rank_zero(dp, finished_summary, output_dir, saved, finished_stage)
    if done is not None:
        console.print(f"[green]already finished[/]: {output_dir} (summary.json); nothing to resume")
    elif distributed.is_main():
        (output_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return saved, done


def finished_summary(output_dir: Path, saved: dict[str, Any] | None, stage: str) -> dict[str, Any] | None:
    """The summary of a run whose checkpoint says it got past ``stage`` and that wrote summary.json."""
    path = output_dir / "summary.json"
    if saved is not None and saved["progress"]["stage"] == stage and path.is_file():
        return json.loads(path.read_text())
    return None


def learn_epochs(exp: Experiment, prog: Progress, epochs: int, bs: int, assign_every: int, ckpt_every: int,
                 metrics, running: LabelAssignment, order_gen: torch.Generator, checkpoint: Checkpointer,
                 stop: StopOnSignal, show: bool) -> None:
    """The learning epochs, from wherever ``prog`` stands. Checkpoints every ``ckpt_every`` samples,
    at each epoch end, and (then raising TrainingInterrupted) when a stop signal arrived."""
    train_split = exp.data.train
    n_train = len(train_split)
    last_ckpt = prog.samples
    while prog.epoch <= epochs:
        exp.network.train()
        if prog.order is None:
            prog.order = torch.randperm(n_train, generator=order_gen)
        with PhaseProgress(f"epoch {prog.epoch}/{epochs}", n_train, show) as bar:
            if prog.start:  # resumed mid-epoch
                bar.progress.update(bar.task, completed=prog.start)
            base_time = prog.train_time
            while prog.start < n_train:
                idx = prog.order[prog.start:prog.start + bs]
                set_labels(exp.network, train_split.y[idx])  # for label-driven rules (reward, tempotron)
                prog.window_c.append(exp.simulate(train_split.x[idx]).cpu())
                prog.window_y.append(train_split.y[idx])
                prog.samples += len(idx)
                prog.start += len(idx)
                extra = None
                if sum(len(y) for y in prog.window_y) >= assign_every or prog.start >= n_train:
                    c, y = torch.cat(prog.window_c), torch.cat(prog.window_y)
                    acc = {}
                    if running.rates.sum() > 0:  # predict with labels from earlier windows
                        acc = {k: float((p == y).float().mean())
                               for k, p in exp.predict_with(c, running).items()}
                    running.update(c, y, alpha=1.0)
                    prog.window_c, prog.window_y = [], []
                    metrics.log(phase="train", epoch=prog.epoch, samples=prog.samples,
                                running_accuracy=acc, images_per_s=round(bar.images_per_s, 2))
                    if acc:
                        extra = f"acc {max(acc.values()):.3f}"
                bar.advance(len(idx), extra)
                prog.train_time = base_time + bar.elapsed
                if prog.start >= n_train:
                    break  # the epoch-end checkpoint below covers this point
                if stop.requested or (ckpt_every and prog.samples - last_ckpt >= ckpt_every):
                    checkpoint(prog)
                    last_ckpt = prog.samples
                    if stop.requested:
                        raise TrainingInterrupted(stop.signum, checkpoint.output_dir)
        exp.assignment.load_state_dict(running.state_dict())
        prog.epoch, prog.start, prog.order = prog.epoch + 1, 0, None
        checkpoint(prog)
        last_ckpt = prog.samples
        if stop.requested:
            raise TrainingInterrupted(stop.signum, checkpoint.output_dir)


def label_pass(exp: Experiment, tr: dict[str, Any], metrics, show: bool) -> None:
    """Assign labels from one pass over the training set with learning off."""
    exp.network.eval()
    train_split = exp.data.train
    if tr.get("label_pass", True) and len(train_split):
        with PhaseProgress("assign labels", len(train_split), show) as bar:
            counts = exp.collect_counts(train_split, int(tr.get("eval_batch_size", 256)), bar)
        exp.assignment = LabelAssignment(exp.assignment.n_neurons, exp.assignment.n_classes, exp.device)
        exp.assignment.update(counts, train_split.y)
        metrics.log(phase="assign", samples=len(train_split), images_per_s=round(bar.images_per_s, 2),
                    silent_train_samples=int((counts.sum(1) == 0).sum()))


# keys that may differ between a run and its resumption (they change nothing that was learned)
RESUMABLE_CHANGES = ("resume", "logger", "device", "trainer.checkpoint_every", "trainer.eval_batch_size",
                     "trainer.strategy", "trainer.backend")  # batch_size is global: N processes learn as 1


def resume_point(output_dir: Path, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint to resume from when ``resume`` is set, else None.

    Without ``resume`` an existing checkpoint is an error (a new run would overwrite it). With
    ``resume`` but no checkpoint, training starts from scratch (so resuming a sweep also starts
    the jobs that never ran). The saved config must match, apart from RESUMABLE_CHANGES.
    """
    has_ckpt = (output_dir / CHECKPOINT).is_file() or (output_dir / PREVIOUS).is_file()
    if not cfg.get("resume", False):
        if has_ckpt:
            raise ConfigError(f"{output_dir} already holds a run (checkpoint.pt); continue it with resume=true "
                              "(or snnrun resume run_dir=...), or choose another hydra.run.dir", key="resume")
        return None
    if not has_ckpt:
        console.print(f"[yellow]resume=true but no checkpoint in {output_dir}: starting from scratch[/]")
        return None
    saved = load_checkpoint(output_dir, fallback=True, warn=lambda m: console.print(f"[yellow]{m}[/]"))
    if "progress" not in saved:
        raise ConfigError(f"the checkpoint in {output_dir} was written by an older snnrun and holds no "
                          "training progress; it can be evaluated but not resumed", key="resume")
    diff = config_diff(saved["config"], cfg, ignore=RESUMABLE_CHANGES)
    if diff:
        key, (old, new) = next(iter(diff.items()))
        raise ConfigError(f"the run in {output_dir} was started with {key}={old!r}, not {new!r} "
                          f"({len(diff)} key(s) differ); resume with the run's own config "
                          "(snnrun resume run_dir=...) or start a new run", key=key)
    return saved


def config_diff(a: Any, b: Any, prefix: str = "", ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Dotted keys whose values differ between two plain configs: {key: (a_value, b_value)}."""
    if prefix.rstrip(".") in ignore:
        return {}
    if isinstance(a, dict) and isinstance(b, dict):
        out = {}
        for k in list(a) + [k for k in b if k not in a]:
            out.update(config_diff(a.get(k, MISSING), b.get(k, MISSING), f"{prefix}{k}.", ignore))
        return out
    return {} if a == b else {prefix.rstrip("."): (a, b)}


MISSING = "<missing>"


def evaluate_run(run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run from its saved config and checkpoint; write ``eval.json``."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    from snnrun.engine.gradient_loop import evaluate_gradient_run, is_gradient_config

    if is_gradient_config(cfg):
        return evaluate_gradient_run(run_dir, cfg)
    state = load_checkpoint(run_dir, fallback=False)
    exp = build_experiment(cfg)
    exp.load_state_dict(state)
    results = finish(exp, run_dir, test_phase(exp, bool(exp.cfg.get("logger", {}).get("progress", True))))
    summary_path = run_dir / "summary.json"
    previous = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    out = {**previous, **results, "wall_s": time.perf_counter() - t_start, "device": str(exp.device),
           "seed": int(exp.cfg["seed"]), "versions": versions(), "git_commit": git_commit()}
    write_json_atomic(run_dir / "eval.json", out)
    return out


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """The composed config a run was started with (``.hydra/config.yaml``), plus Hydra overrides."""
    from snnrun.run.compose import compose_run_config

    return compose_run_config(run_dir, overrides)


def resume_run(run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """``snnrun resume run_dir=DIR``: continue a stopped run with its own saved config.

    Only keys in RESUMABLE_CHANGES (device, logger, checkpoint cadence ...) may be overridden.
    """
    cfg = load_run_config(run_dir, [*(overrides or []), "resume=true"])
    return train(cfg, run_dir)
