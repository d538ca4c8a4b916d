"""The training loop for gradient (surrogate BPTT) models: ``model.layers`` + ``model.learner``.

Per epoch: shuffled mini-batches of the training split (minus a held-out validation split,
``learner.val_fraction``), one optimiser step each; then validation loss/accuracy, the scheduler
step, a metrics line, and a checkpoint. The best epoch by validation accuracy (ties: lower
validation loss) is the model that is tested and kept. Outputs and summary keys are those of the
local-learning loop (:mod:`snnrun.engine.loop`): metrics.jsonl, summary.json, checkpoint.pt,
confusion.png, resolved_config.yaml; runs resume (``resume=true``) at epoch boundaries, and
SIGINT/SIGTERM stop after writing a checkpoint.

Model config keys: ``layers`` (see :mod:`snnrun.components.layers`), ``loss`` (see :mod:`snnrun.components.losses`),
``learner`` (see :mod:`snnrun.components.learning.gradient`), ``T`` (steps per sample with direct input),
``encoder`` (null: direct input — the image is the input current at every step — or an encoder
node, which then sets T), ``step_mode`` (multi/single), ``dt``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from snnrun.engine import data_parallel as distributed
from snnrun.run.checkpoint import StopOnSignal, TrainingInterrupted, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from snnrun.data import Dataset, Split, build_dataset, stratified_split
from snnrun.components.encoders import Encoder
from snnrun.errors import ConfigError
from snnrun.engine.experiment import resolve_device, resolved, seed_everything
from snnrun.components.layers import FeedForward, build_feedforward
from snnrun.components.learning.gradient import SurrogateBPTT, is_gradient_learner
from snnrun.components.learning.base import LearningRule
from snnrun.run.metrics import open_metrics
from snnrun.run.console import PhaseProgress, console, write_json_atomic
from snnrun.components.losses import Loss
from snnrun.run.plots import save_weights_png

REQUIRED = ("layers", "loss", "learner")


def is_gradient_config(cfg: Any) -> bool:
    """Whether ``cfg.model`` is a gradient-trained model (its ``learner`` is a gradient learner)."""
    model = cfg.get("model") if hasattr(cfg, "get") else None
    if model is None or not hasattr(model, "get"):
        return False
    return is_gradient_learner(model.get("learner"))


@dataclass
class GradientExperiment:
    cfg: dict[str, Any]
    device: torch.device
    data: Dataset
    train: Split
    val: Split
    model: FeedForward
    encoder: Encoder | None
    steps: int
    loss: Loss
    learner: SurrogateBPTT
    data_parallel: Any = None  # snnrun.engine.data_parallel.DataParallel in a torchrun run
    ddp: Any = None            # the DistributedDataParallel wrapper that trains ``model`` there

    def present(self, x: torch.Tensor, rows: slice | None = None) -> dict[str, torch.Tensor | None]:
        """Encode a batch ``(B, *shape)`` and run the model over all steps. With ``rows`` (a
        data-parallel run) only those rows are simulated, encoded as part of the whole batch so a
        sample's random spikes don't depend on its rank."""
        model = self.ddp if self.ddp is not None and self.model.training else self.model
        if self.encoder is None:
            x = (x if rows is None else x[rows]).to(self.device, non_blocking=True)
            return model(x, steps=self.steps)
        x = x.to(self.device, non_blocking=True)
        spikes = self.encoder(x).to(x.dtype)
        return model(spikes if rows is None else spikes[:, rows])

    @torch.no_grad()
    def evaluate(self, split: Split, batch_size: int, bar=None) -> tuple[float, torch.Tensor]:
        """Mean loss and predictions over a split, learning off."""
        self.model.eval()
        total, preds = 0.0, []
        for start in range(0, len(split), batch_size):
            xb, yb = split.x[start:start + batch_size], split.y[start:start + batch_size].to(self.device)
            with self.learner.autocast(self.device):
                out = self.present(xb)
                total += float(self.loss.loss(out, yb)) * len(yb)
            preds.append(self.loss.predict(out).cpu())
            if bar is not None:
                bar.advance(len(yb))
        n = max(len(split), 1)
        return total / n, torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def build_gradient_experiment(cfg: DictConfig) -> GradientExperiment:
    plain = resolved(cfg)
    model_cfg = plain["model"]
    missing = [k for k in REQUIRED if k not in model_cfg]
    if missing:
        raise ConfigError(f"a gradient model config needs {', '.join(missing)}", key="model")
    device = resolve_device(plain.get("device", "auto"))
    seed = int(plain.get("seed", 0))
    seed_everything(seed)
    data = build_dataset(plain["data"])
    learner = LearningRule.registry.build(model_cfg["learner"], key="model.learner")
    loss = Loss.build(model_cfg["loss"], key="model.loss")
    encoder = None
    if model_cfg.get("encoder") is not None:
        encoder = Encoder.build(model_cfg["encoder"], key="model.encoder")
        steps = encoder.steps
    else:
        steps = model_cfg.get("T")
        if not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"T (time steps per sample) must be a positive integer, got {steps!r}", key="model.T")
    model = build_feedforward(model_cfg["layers"], data.shape, dt=float(model_cfg.get("dt", 1.0)),
                              step_mode=str(model_cfg.get("step_mode", "multi")))
    model.record_v = loss.needs_v
    out_shape = _output_size(model, data.shape)
    if out_shape != data.n_classes:
        raise ConfigError(f"the last layer has {out_shape} outputs but {data.name} has {data.n_classes} classes",
                          key=f"model.layers.{list(model.layers)[-1]}")
    model.to(device)
    train, val = split_validation(data.train, learner.val_fraction, seed)
    return GradientExperiment(plain, device, data, train, val, model, encoder, steps, loss, learner)


@torch.no_grad()
def _output_size(model: FeedForward, in_shape) -> int:
    was = model.training
    model.eval()
    try:
        out = model(torch.zeros(2, *in_shape), steps=1)["out"]
    finally:
        model.train(was)
    return int(np.prod(out.shape[2:]))


def split_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out a stratified ``fraction`` of the training split (fixed by ``seed``)."""
    if fraction <= 0 or len(train) < 2:
        return train, Split(train.x[:0], train.y[:0])
    tr, va = stratified_split(train.y.numpy(), fraction, seed)
    tr, va = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
    return Split(train.x[tr], train.y[tr]), Split(train.x[va], train.y[va])


def _progress_state(epoch: int, samples: int, train_time: float, best: dict[str, Any], stage: str) -> dict:
    return {"epoch": epoch, "samples": samples, "train_time": train_time, "best": best, "stage": stage}


def train_gradient(cfg: DictConfig, output_dir: str | Path, dp=None) -> dict[str, Any]:
    """Train a gradient model, select the best epoch on validation, test it, write the outputs.
    ``dp``: this process's :class:`snnrun.engine.data_parallel.DataParallel` in a torchrun run."""
    from snnrun.engine.loop import EVAL_SEED_OFFSET, open_run, run_facts, versions

    t_start = time.perf_counter()
    output_dir = Path(output_dir)
    exp = build_gradient_experiment(cfg)
    if dp is not None:
        dp.wrap_gradient(exp)
    saved, done = open_run(output_dir, exp.cfg, dp, finished_stage="done")
    if done is not None:
        return done
    tr = exp.cfg["trainer"]
    epochs, bs, ebs = int(tr["epochs"]), int(tr["batch_size"]), int(tr.get("eval_batch_size", 256))
    if epochs < 0 or bs < 1 or ebs < 1:
        raise ConfigError(f"need epochs >= 0 and batch sizes >= 1, got {epochs}, {bs}, {ebs}", key="trainer")
    show = bool((exp.cfg.get("logger") or {}).get("progress", True))
    n_train = len(exp.train)
    steps_per_epoch = (n_train + bs - 1) // bs
    exp.learner.configure(exp.model, epochs=epochs, steps_per_epoch=steps_per_epoch)
    order_gen = torch.Generator().manual_seed(int(exp.cfg["seed"]))
    epoch, samples, train_time = 1, 0, 0.0
    best = {"epoch": 0, "val_accuracy": -1.0, "val_loss": float("inf"), "model": None}
    if saved is not None:
        exp.model.load_state_dict(saved["model"])
        exp.learner.load_state_dict(saved["learner"])
        set_rng_state(saved["rng"], order=order_gen)
        p = saved["progress"]
        epoch, samples, train_time, best = p["epoch"], p["samples"], p["train_time"], p["best"]
    metrics = open_metrics(exp.cfg.get("logger"), output_dir, resume_from=saved and saved["metrics"])
    console.print(f"[bold]snnrun[/] {exp.cfg['model'].get('name', 'model')} on {exp.data.name} "
                  f"({n_train} train / {len(exp.val)} val / {len(exp.data.test)} test, T={exp.steps}), "
                  f"{exp.learner.registered_name}, device {exp.device}, seed {exp.cfg['seed']}"
                  + (f"; [yellow]resuming at epoch {epoch}[/]" if saved is not None else ""))

    def checkpoint(stage: str) -> None:
        save_checkpoint(output_dir, {
            "model": exp.model.state_dict(), "learner": exp.learner.state_dict(),
            "progress": _progress_state(epoch, samples, train_time, best, stage),
            "rng": rng_state(order=order_gen), "metrics": metrics.position(),
            "config": exp.cfg, "versions": versions(), "epoch": epoch - 1, "samples": samples})

    try:
        with StopOnSignal() as stop:
            # the training split lives on the device: batches are gathered there, with no
            # host-to-device copy per step
            train_x, train_y = exp.train.x.to(exp.device), exp.train.y.to(exp.device)
            while epoch <= epochs:
                exp.model.train()
                order = torch.randperm(n_train, generator=order_gen).to(exp.device)
                # running sums stay on the device: reading them every step would stall the CPU
                # until the GPU finishes, instead of letting it queue the next step
                loss_sum = torch.zeros((), device=exp.device, dtype=torch.float64)
                correct_sum = torch.zeros((), device=exp.device, dtype=torch.long)
                seen = 0
                with PhaseProgress(f"epoch {epoch}/{epochs}", n_train, show) as bar:
                    for i, start in enumerate(range(0, n_train, bs)):
                        idx = order[start:start + bs]
                        xb, yb, rows, loss_fn = train_x[idx], train_y[idx], None, exp.loss
                        if dp is not None:  # this rank's share of the global batch
                            rows = dp.begin_batch(len(idx))
                            yb, loss_fn = yb[rows], distributed.ScaledLoss(exp.loss, dp.loss_scale())
                        loss, out = exp.learner.train_step(lambda: exp.present(xb, rows), loss_fn, yb, exp.device)
                        loss_sum += loss.detach().double() / getattr(loss_fn, "scale", 1.0) * len(yb)
                        correct_sum += (exp.loss.predict(out).detach() == yb).sum()
                        seen += len(yb)
                        samples += len(idx)
                        show_loss = show and (i % 20 == 0 or start + bs >= n_train)
                        bar.advance(len(idx), f"loss {float(loss_sum) / max(seen, 1):.4f}" if show_loss else None)
                    total_loss, correct = float(loss_sum), int(correct_sum)
                    epoch_time = bar.elapsed
                if dp is not None:  # the epoch's loss and accuracy over all ranks' shares
                    total_loss, correct = dp.sum_(total_loss, correct)
                    correct = int(correct)
                train_time += epoch_time
                record = {"phase": "train", "epoch": epoch, "samples": samples,
                          "loss": total_loss / max(n_train, 1), "train_accuracy": correct / max(n_train, 1),
                          "lr": exp.learner.lr, "images_per_s": round(n_train / max(epoch_time, 1e-9), 2)}
                val_loss = None
                if len(exp.val):
                    val_loss, preds = evaluate(exp, exp.val, ebs)
                    val_acc = float((preds == exp.val.y).float().mean())
                    record.update(val_loss=val_loss, val_accuracy=val_acc)
                    better = (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"])
                else:  # no validation split: the last epoch is the one kept
                    val_acc, better = float("nan"), True
                exp.learner.end_epoch(val_loss)
                if better:
                    best = {"epoch": epoch, "val_accuracy": val_acc,
                            "val_loss": val_loss if val_loss is not None else float("nan"),
                            "model": {k: v.detach().cpu().clone() for k, v in exp.model.state_dict().items()}}
                record["best_epoch"] = best["epoch"]
                metrics.log(**record)
                console.print(f"epoch {epoch}: loss {record['loss']:.4f}, train {record['train_accuracy']:.4f}"
                              + (f", val {val_acc:.4f}" if len(exp.val) else "") + f", lr {record['lr']:.2e}"
                              + (" [green]best[/]" if better else ""))
                epoch += 1
                checkpoint("train")
                if stop.requested:
                    raise TrainingInterrupted(stop.signum, output_dir)

            if best["model"] is not None:
                exp.model.load_state_dict(best["model"])
            results = test(exp, ebs, show, EVAL_SEED_OFFSET)
            checkpoint("done")
        metrics.log(phase="test", **{k: v for k, v in results.items() if not k.startswith("_")})
    finally:
        metrics.close()

    results = finish(exp, output_dir, results)
    summary = {
        **results,
        "best_epoch": best["epoch"],
        "val_accuracy": best["val_accuracy"] if len(exp.val) else None,
        **run_facts(exp, t_start=t_start, samples=samples, train_time=train_time, n_train=n_train,
                    epochs=epochs, resumed=saved is not None, n_val=len(exp.val)),
        "learner": exp.learner.registered_name,
    }
    write_json_atomic(output_dir / "summary.json", summary)
    console.print(f"[green]done[/] in {summary['wall_s']:.1f} s: test_accuracy {summary['test_accuracy']:.4f} "
                  f"(best epoch {best['epoch']}); outputs in {output_dir}")
    return summary


def test(exp: GradientExperiment, batch_size: int, show: bool, seed_offset: int) -> dict[str, Any]:
    """Test accuracy of the current model (seeded: re-evaluation draws the same encoder noise)."""
    torch.manual_seed(int(exp.cfg.get("seed", 0)) + seed_offset)
    test_split = exp.data.test
    with PhaseProgress("test", len(test_split), show) as bar:
        loss, preds = evaluate(exp, test_split, batch_size, bar)
    acc = float((preds == test_split.y).float().mean()) if len(test_split) else float("nan")
    name = exp.loss.name
    return {"test_accuracy": acc, "best_decoder": name, "decoders": {name: {"test_accuracy": acc}},
            "test_loss": loss, "n_test": len(test_split), "test_images_per_s": bar.images_per_s, "_preds": preds}


def evaluate(exp: GradientExperiment, split: Split, batch_size: int, bar=None) -> tuple[float, torch.Tensor]:
    """Mean loss and predictions over a split; split across the ranks of a data-parallel run."""
    if exp.data_parallel is None:
        return exp.evaluate(split, batch_size, bar)
    return exp.data_parallel.evaluate(exp, split, batch_size, bar)


def finish(exp: GradientExperiment, output_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """The local loop's confusion matrix and results table, plus the first layer's receptive
    fields for dense models."""
    from snnrun.engine.loop import finish as finish_figures

    results = finish_figures(exp, output_dir, results)
    first = next((m for m in exp.model.layers.values() if hasattr(m, "weight")), None)
    if first is not None and first.weight.dim() == 2 and first.weight.shape[1] == int(np.prod(exp.data.shape)):
        save_weights_png(first.weight.detach().t(), exp.data.shape, output_dir / "weights.png",
                         "first dense layer: input weights per unit")
    return results


def evaluate_gradient_run(run_dir: str | Path, cfg: DictConfig) -> dict[str, Any]:
    """Re-evaluate a finished gradient run (its best model) on the test split; write ``eval.json``."""
    from snnrun.engine.loop import EVAL_SEED_OFFSET, git_commit, versions

    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir, fallback=False)
    exp = build_gradient_experiment(cfg)
    best = (state.get("progress") or {}).get("best") or {}
    try:
        exp.model.load_state_dict(best.get("model") or state["model"])
    except (RuntimeError, KeyError) as e:
        raise ConfigError("the checkpoint does not fit this model (sizes or components differ): "
                          + str(e).splitlines()[0], key="model") from e
    show = bool((exp.cfg.get("logger") or {}).get("progress", True))
    results = finish(exp, run_dir, test(exp, int(exp.cfg["trainer"].get("eval_batch_size", 256)), show,
                                        EVAL_SEED_OFFSET))
    summary_path = run_dir / "summary.json"
    previous = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    out = {**previous, **results, "wall_s": time.perf_counter() - t_start, "device": str(exp.device),
           "seed": int(exp.cfg["seed"]), "versions": versions(), "git_commit": git_commit()}
    write_json_atomic(run_dir / "eval.json", out)
    return out
