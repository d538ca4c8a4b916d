"""Learning off: a split presented in batches and decoded (validation, test), the label-assignment
pass of models whose decoders vote by label, the test phase with its figures, and the
re-evaluation of a saved run (``snnrun eval``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from snnrun.components.decoders import LabelAssignment
from snnrun.data import Split
from snnrun.engine.deferred import to_host
from snnrun.engine.experiment import Experiment, build_experiment
from snnrun.engine.represent import Represent
from snnrun.errors import ConfigError
from snnrun.run.checkpoint import load_checkpoint
from snnrun.run.console import PhaseProgress, print_table, results_table, write_json_atomic
from snnrun.run.files import read_json
from snnrun.run.plots import confusion_matrix, save_confusion_png, save_weights_png
from snnrun.run.saved import FINISHED, git_commit, load_run_config, load_run_state, versions

EVAL_SEED_OFFSET = 1_000_003  # test-time randomness has its own stream: `snnrun eval` replays it


@dataclass
class Evaluation:
    """Per-decoder predictions over a split, its readout counts, and the gradient loss."""

    preds: dict[str, torch.Tensor]
    counts: torch.Tensor
    loss: float | None = None
    images_per_s: float = 0.0
    compile_s: float = 0.0  # of the time behind images_per_s: compiling and capturing new batch shapes

    @property
    def steady_images_per_s(self) -> float:
        """images/s without the one-off compile and capture (as ``snnrun bench`` measures)."""
        if self.images_per_s <= 0:
            return 0.0
        return self.images_per_s / max(1.0 - self.compile_s * self.images_per_s / self.n, 1e-9)

    @property
    def n(self) -> int:
        return len(self.counts)

    def accuracy(self, y: torch.Tensor) -> dict[str, float]:
        return {name: float((p == y).float().mean()) if len(y) else float("nan") for name, p in self.preds.items()}


@torch.no_grad()
def evaluate(exp: Experiment, split: Split, batch_size: int, bar=None, predict: bool = True) -> Evaluation:
    """Present a split with learning off, in batches; decode every batch (``predict``). Counts,
    predictions and the loss stay on the device until the end (one host transfer, no sync per batch)."""
    exp.network.eval()
    preds: dict[str, list] = {name: [] for name in exp.decoders}
    counts = []
    grad = exp.gradient
    captured = exp.capture_s
    loss_sum = torch.zeros((), dtype=torch.float64, device=exp.device)
    again = Represent.from_config(exp.cfg["trainer"], exp.encoder)  # trainer.represent_below: quiet samples
    xs = split.x.to(exp.device)  # once: batches are slices on the device
    for start in range(0, len(split), batch_size):
        xb, yb = xs[start:start + batch_size], split.y[start:start + batch_size]
        r = exp.present(xb)
        if again is not None:
            r = again(exp.present, xb, r)
        counts.append(r.counts)
        if predict:
            for name, p in exp.predict(r).items():
                preds[name].append(p)
        if grad is not None and r.spikes is not None:
            loss = grad.loss.loss({"out": r.spikes, "v": r.v}, yb.to(r.spikes.device))
            loss_sum += loss.detach().to(loss_sum.device, torch.float64) * len(yb)
        if bar is not None:
            bar.advance(len(xb))
    n = exp.network.groups[exp.readout].n
    out = to_host({"preds": {k: torch.cat(v) for k, v in preds.items() if v},
                   "counts": torch.cat(counts) if counts else torch.zeros(0, n), "loss": loss_sum})
    preds_host = {k: out["preds"].get(k, torch.zeros(0, dtype=torch.long)) for k in preds}
    return Evaluation(preds_host, out["counts"],
                      float(out["loss"]) / max(len(split), 1) if grad is not None else None,
                      bar.images_per_s if bar is not None else 0.0,  # after the transfer: the device is done
                      exp.capture_s - captured)


def label_pass(exp: Experiment, batch_size: int, metrics, show: bool) -> None:
    """Assign labels from one pass over the training split with learning off (``metrics``: a
    metrics log for its line, or None)."""
    split = exp.train
    if exp.assignment is None or not len(split):
        return
    with PhaseProgress("assign labels", len(split), show) as bar:
        ev = evaluate(exp, split, batch_size, bar, predict=False)
    exp.assignment = LabelAssignment(exp.assignment.n_neurons, exp.assignment.n_classes, exp.device)
    exp.assignment.update(ev.counts, split.y)
    if metrics is not None:
        metrics.log(phase="assign", samples=len(split), images_per_s=round(ev.images_per_s, 2),
                    steady_images_per_s=round(ev.steady_images_per_s, 2), compile_s=round(ev.compile_s, 3),
                    silent_train_samples=int((ev.counts.sum(1) == 0).sum()))


def test_phase(exp: Experiment, show: bool) -> dict[str, Any]:
    """Evaluate on the test split with learning off. Seeded so re-evaluation gives the same numbers."""
    torch.manual_seed(int(exp.cfg.get("seed", 0)) + EVAL_SEED_OFFSET)
    test = exp.data.test
    bs = int(exp.cfg["trainer"].get("eval_batch_size", 256))
    with PhaseProgress("test", len(test), show) as bar:
        ev = evaluate(exp, test, bs, bar)
    per_decoder = {name: {"test_accuracy": acc} for name, acc in ev.accuracy(test.y).items()}
    best = max(per_decoder, key=lambda k: per_decoder[k]["test_accuracy"])
    out = {"test_accuracy": per_decoder[best]["test_accuracy"], "best_decoder": best,
           "decoders": per_decoder, "n_test": len(test), "test_images_per_s": ev.images_per_s,
           "test_steady_images_per_s": ev.steady_images_per_s, "test_compile_s": ev.compile_s,
           "silent_test_samples": int((ev.counts.sum(1) == 0).sum()), "_preds": ev.preds[best]}
    if ev.loss is not None:
        out["test_loss"] = ev.loss
    return out


def finish(exp: Experiment, output_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Figures and the results table; returns the results without private keys."""
    preds = results.pop("_preds")
    cm = confusion_matrix(exp.data.test.y, preds, exp.data.n_classes)
    results["confusion"] = cm.tolist()  # rows: true class; `snnrun report` redraws it from summary.json
    save_confusion_png(cm, output_dir / "confusion.png",
                       f"test, {results['best_decoder']}: accuracy {results['test_accuracy']:.3f}")
    print_table(results_table(f"test accuracy ({results['n_test']} samples)", results["decoders"],
                                ["test_accuracy"]))
    save_receptive_fields(exp, output_dir / "weights.png")
    return results


def save_receptive_fields(exp: Experiment, path: Path) -> bool:
    """The input weights of the first dense connection out of the input group, one tile per
    target neuron (Diehl & Cook's learned digits; a dense gradient model's first layer)."""
    n_in = exp.network.groups[exp.input_group].n
    for c in exp.network.connections.values():
        if c.source != exp.input_group:
            continue
        for op in getattr(c, "ops", [c]):  # a chain: its first weighted op, after reshaping ones
            w = getattr(op, "w", None)
            if isinstance(w, torch.Tensor) and w.dim() == 2 and w.shape[0] == n_in:
                save_weights_png(w.detach(), exp.data.shape, path, f"{c.source} -> {c.target} receptive fields")
                return True
            if op.has_weights or op.n_target != n_in:
                break
    return False


def evaluate_run(run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run from its saved config and checkpoint; write ``eval.json``."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    state = load_checkpoint(run_dir, fallback=False)
    progress = state.get("progress")
    if isinstance(progress, dict) and progress.get("stage", FINISHED) != FINISHED:
        raise ConfigError(f"the run in {run_dir} has not finished training (its checkpoint is from epoch "
                          f"{progress.get('epoch')}, sample {progress.get('start')}: before the label assignment "
                          f"and test); continue it with: snnrun resume run_dir={run_dir}, then evaluate it",
                          key="run_dir")
    summary_path = run_dir / "summary.json"
    previous = read_json(summary_path) if summary_path.is_file() else {}  # before anything is written
    if not isinstance(previous, dict):
        raise ConfigError(f"{summary_path} does not hold a summary mapping", key="run_dir")
    exp = build_experiment(cfg)
    load_run_state(exp, state, run_dir)
    show = bool((exp.cfg.get("logger") or {}).get("progress", True))
    if Represent.from_config(exp.cfg["trainer"], exp.encoder) is not None and exp.assignment is not None:
        # labels assigned as the test presents its samples (quiet ones again): a fresh label pass
        torch.manual_seed(int(exp.cfg.get("seed", 0)) + EVAL_SEED_OFFSET)
        label_pass(exp, int(exp.cfg["trainer"].get("eval_batch_size", 256)), None, show)
    results = finish(exp, run_dir, test_phase(exp, show))
    out = {**previous, **results, "wall_s": time.perf_counter() - t_start, "device": str(exp.device),
           "seed": int(exp.cfg["seed"]), "versions": versions(), "git_commit": git_commit()}
    write_json_atomic(run_dir / "eval.json", out)
    return out

