"""The training loop for local-learning models, test evaluation, and re-evaluation of a run.

Phases: (1) learning epochs with periodic label assignment (running accuracy, as in BindsNET's
eth_mnist example), (2) a label-assignment pass over the training set with learning off,
(3) test evaluation with every decoder. Library code: it never reads ``hydra.*``; the CLI
passes the run directory in.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import snnrun
from snnrun.decoders import LabelAssignment
from snnrun.errors import ConfigError
from snnrun.experiment import Experiment, build_experiment
from snnrun.logging import MetricsLog, PhaseProgress, console, results_table, write_json_atomic
from snnrun.plots import confusion_matrix, save_confusion_png, save_weights_png

CHECKPOINT = "checkpoint.pt"
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


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic: write a temp file, then rename over the old checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}; was the run finished?", key="run_dir")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or not a torch file
        raise ConfigError(f"checkpoint {path} cannot be read ({type(e).__name__}): it is corrupt or "
                          "truncated", key="run_dir") from e


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
    save_confusion_png(cm, output_dir / "confusion.png",
                       f"test, {results['best_decoder']}: accuracy {results['test_accuracy']:.3f}")
    rows = {name: r for name, r in results["decoders"].items()}
    console.print(results_table(f"test accuracy ({results['n_test']} samples)", rows, ["test_accuracy"]))
    return results


def train(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any]:
    """Train and evaluate the configured model; write metrics, checkpoint, summary and figures."""
    t_start = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    exp = build_experiment(cfg)
    (output_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(exp.cfg)))
    tr = exp.cfg["trainer"]
    epochs, bs = int(tr["epochs"]), int(tr["batch_size"])
    assign_every = int(tr.get("assign_every", 250))
    show = bool(exp.cfg.get("logger", {}).get("progress", True))
    if epochs < 0 or bs < 1:
        raise ConfigError(f"need epochs >= 0 and batch_size >= 1, got {epochs} and {bs}", key="trainer")
    train_split = exp.data.train
    n_train = len(train_split)
    console.print(f"[bold]snnrun[/] {exp.cfg['model'].get('name', 'model')} on {exp.data.name} "
                  f"({n_train} train / {len(exp.data.test)} test), device {exp.device}, seed {exp.cfg['seed']}")

    metrics = MetricsLog(output_dir)
    order_gen = torch.Generator().manual_seed(int(exp.cfg["seed"]))
    running = LabelAssignment(exp.assignment.n_neurons, exp.assignment.n_classes, device=exp.device)
    samples, train_time = 0, 0.0
    try:
        for epoch in range(1, epochs + 1):
            exp.network.train()
            order = torch.randperm(n_train, generator=order_gen)
            window_c, window_y = [], []
            with PhaseProgress(f"epoch {epoch}/{epochs}", n_train, show) as bar:
                for start in range(0, n_train, bs):
                    idx = order[start:start + bs]
                    window_c.append(exp.simulate(train_split.x[idx]).cpu())
                    window_y.append(train_split.y[idx])
                    samples += len(idx)
                    window_n = sum(len(y) for y in window_y)
                    extra = None
                    if window_n >= assign_every or start + bs >= n_train:
                        c, y = torch.cat(window_c), torch.cat(window_y)
                        acc = {}
                        if running.rates.sum() > 0:  # predict with labels from earlier windows
                            acc = {k: float((p == y).float().mean())
                                   for k, p in exp.predict_with(c, running).items()}
                        running.update(c, y, alpha=1.0)
                        window_c, window_y = [], []
                        metrics.log(phase="train", epoch=epoch, samples=samples,
                                    running_accuracy=acc, images_per_s=round(bar.images_per_s, 2))
                        if acc:
                            extra = f"acc {max(acc.values()):.3f}"
                    bar.advance(len(idx), extra)
                train_time += bar.elapsed
            exp.assignment.load_state_dict(running.state_dict())
            save_checkpoint(output_dir / CHECKPOINT, {**exp.state_dict(), "epoch": epoch, "samples": samples,
                                                      "config": exp.cfg, "versions": versions()})

        exp.network.eval()
        if tr.get("label_pass", True) and n_train:
            with PhaseProgress("assign labels", n_train, show) as bar:
                counts = exp.collect_counts(train_split, int(tr.get("eval_batch_size", 256)), bar)
            exp.assignment = LabelAssignment(exp.assignment.n_neurons, exp.assignment.n_classes, exp.device)
            exp.assignment.update(counts, train_split.y)
            metrics.log(phase="assign", samples=n_train, images_per_s=round(bar.images_per_s, 2),
                        silent_train_samples=int((counts.sum(1) == 0).sum()))
        save_checkpoint(output_dir / CHECKPOINT, {**exp.state_dict(), "epoch": epochs, "samples": samples,
                                                  "config": exp.cfg, "versions": versions()})
        results = test_phase(exp, show)
    finally:
        metrics.close()
    metrics = MetricsLog(output_dir)
    metrics.log(phase="test", **{k: v for k, v in results.items() if not k.startswith("_")})
    metrics.close()

    results = finish(exp, output_dir, results)
    readout_in = [c for c in exp.network.connections.values()
                  if c.target == exp.readout and c.source == exp.input_group]
    if readout_in:
        save_weights_png(readout_in[0].w, exp.data.shape, output_dir / "weights.png",
                         f"{readout_in[0].source} -> {readout_in[0].target} receptive fields")
    summary = {
        **results,
        "train_images_per_s": samples / train_time if train_time > 0 else None,
        "train_samples": samples,
        "n_train": n_train,
        "epochs": epochs,
        "wall_s": time.perf_counter() - t_start,
        "device": str(exp.device),
        "seed": int(exp.cfg["seed"]),
        "model": exp.cfg["model"].get("name"),
        "dataset": exp.data.name,
        "versions": versions(),
        "git_commit": git_commit(),
    }
    write_json_atomic(output_dir / "summary.json", summary)
    console.print(f"[green]done[/] in {summary['wall_s']:.1f} s: test_accuracy "
                  f"{summary['test_accuracy']:.4f} ({summary['best_decoder']}); outputs in {output_dir}")
    return summary


def evaluate_run(run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run from its saved config and checkpoint; write ``eval.json``."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir} is not a snnrun run directory (no .hydra/config.yaml)", key="run_dir")
    cfg = OmegaConf.load(cfg_path)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    state = load_checkpoint(run_dir / CHECKPOINT)
    exp = build_experiment(cfg)
    exp.load_state_dict(state)
    results = finish(exp, run_dir, test_phase(exp, bool(exp.cfg.get("logger", {}).get("progress", True))))
    summary_path = run_dir / "summary.json"
    import json

    previous = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    out = {**previous, **results, "wall_s": time.perf_counter() - t_start, "device": str(exp.device),
           "seed": int(exp.cfg["seed"]), "versions": versions(), "git_commit": git_commit()}
    write_json_atomic(run_dir / "eval.json", out)
    return out
