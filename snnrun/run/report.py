"""``snnrun report run_dir=DIR``: inspect a finished (or stopped) run without rerunning it.

Prints the summary and what the run changed relative to its model's current defaults, and
(re)draws the figures: learning curves (metrics.jsonl), spike raster and membrane traces of a
few test samples (simulated once from the checkpoint, learning off), receptive fields, and the
confusion matrix (stored in summary.json, so no test pass is needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from rich.markup import escape
from rich.table import Table

from snnrun.run.checkpoint import load_checkpoint
from snnrun.errors import ConfigError
from snnrun.run.console import console, fmt, print_table
from snnrun.run.files import read_json
from snnrun.run.plots import (most_active, save_confusion_png, save_learning_curves_png, save_membrane_png,
                              save_raster_png, voltage_unit)

SUMMARY_KEYS = ("test_accuracy", "best_decoder", "train_images_per_s", "train_samples", "epochs", "wall_s",
                "device", "seed", "model", "dataset", "resumed", "git_commit")


def default_config_diff(run_dir: Path) -> dict[str, tuple[Any, Any]]:
    """What the run changed relative to ``+model=<its model>`` with today's defaults.

    Group choices that differ come first (``data``: digits -> synthetic); values are then
    compared with the defaults *of the run's choices*, so only explicit value changes show.
    """
    from snnrun.run.saved import config_diff
    from snnrun.run.compose import compose

    run_cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    choices = {}
    if hydra_yaml.is_file():
        choices = OmegaConf.to_container(OmegaConf.load(hydra_yaml).hydra.runtime.choices)
    model = choices.pop("model", None) or OmegaConf.select(run_cfg, "model.name")
    base = [f"+model={model}"] if model else []

    def defaults(overrides):
        return compose("config", overrides, return_hydra_config=True)

    try:
        default = defaults(base)
        default_choices = OmegaConf.to_container(default.hydra.runtime.choices)
        changed = {k: (default_choices.get(k), v) for k, v in choices.items()
                   if not k.startswith("hydra/") and default_choices.get(k) != v}
        reference = defaults(base + [f"{k}={v}" for k, (_, v) in changed.items()
                                     if v is not None and k in default_choices]) if changed else default
    except Exception as e:  # the model or a preset may no longer exist in this install
        raise ConfigError(f"cannot compose the defaults of model '{model}' to compare with: "
                          f"{e}", key="model") from e
    ref = OmegaConf.to_container(reference)
    ref.pop("hydra", None)
    return {**{f"({k})": v for k, v in changed.items()}, **config_diff(ref, OmegaConf.to_container(run_cfg))}


def draw_activity(exp, run_dir: Path, n_samples: int = 3, n_traces: int = 5) -> list[Path]:
    """Present the first test samples with learning off; raster of every group and membrane
    traces of the readout's most active neurons for sample 0."""
    net, readout = exp.network, exp.readout
    net.eval()
    x = exp.data.test.x[:n_samples].to(exp.device)
    if not len(x):
        return []
    torch.manual_seed(0)  # the pictures are reproducible
    inputs, static = exp.inputs(x)
    net.reset_state(x.shape[0])  # per-sample state (v) exists after a reset
    grp = net.groups[readout]
    with torch.no_grad():
        out = net(inputs, record=tuple(net.groups), record_v=(readout,) if hasattr(grp, "v") else (),
                  static=static)
    trains = {g: s.reshape(s.shape[0], x.shape[0], -1)[:, 0].float().cpu() for g, s in out["spikes"].items()}
    label = int(exp.data.test.y[0])
    written = [run_dir / "raster.png"]
    save_raster_png(trains, net.dt, written[0], f"test sample 0 (label {label}): spikes per group")
    if readout in out["v"]:
        v = out["v"][readout]
        v = v.reshape(v.shape[0], x.shape[0], -1)[:, 0].float().cpu()
        spikes = trains[readout]
        top = most_active(spikes, n_traces)
        what = "most active neurons"
        if not top:  # nothing spiked: the neurons that came closest
            top = v.max(0).values.argsort(descending=True)[:n_traces].tolist()
            what = "no neuron spiked; highest peaks"
        th = grp.threshold() if hasattr(grp, "threshold") else None
        th = None if th is None else torch.as_tensor(th, dtype=torch.float32).cpu().flatten()
        th = None if th is None or th.numel() not in (1, v.shape[1]) else th.expand(v.shape[1])
        written.append(run_dir / "membrane.png")
        save_membrane_png(v, top, net.dt, written[-1], f"{readout}: {what}, test sample 0 (label {label})",
                          threshold=th, spikes=spikes, unit=voltage_unit(grp))
    return written


def report_run(run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Print the summary and config diff of a run and redraw its figures; returns what was found.

    ``overrides`` (Hydra's, e.g. ``device=cpu``) apply to the config the figures are simulated
    with (snnrun.run.compose); the config diff is always the run's saved config."""
    from snnrun.engine.experiment import build_experiment
    from snnrun.engine.evaluation import save_receptive_fields
    from snnrun.run.saved import load_run_state
    from snnrun.run.compose import compose_run_config

    run_dir = Path(run_dir)
    cfg = compose_run_config(run_dir, overrides)
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else None
    if summary is not None and not isinstance(summary, dict):
        raise ConfigError(f"{summary_path} does not hold a summary mapping", key="run_dir")
    metrics_path = run_dir / "metrics.jsonl"
    records = [read_json(metrics_path, line, i) for i, line in
               enumerate(metrics_path.read_text().splitlines(), 1) if line.strip()] if metrics_path.is_file() else []
    # everything that can fail (overrides, the model, the checkpoint) before a figure is written:
    # a refused report changes nothing in the run
    exp = build_experiment(cfg)
    load_run_state(exp, load_checkpoint(run_dir, fallback=False), run_dir)

    t = Table(title=f"run {run_dir}", title_justify="left", show_header=False)
    if summary is None:
        t.add_row("status", "[yellow]unfinished[/] (no summary.json): resume with snnrun resume "
                            f"run_dir={run_dir}")
    else:
        for k in SUMMARY_KEYS:
            if k in summary:
                t.add_row(k, fmt(summary[k]))
        for name, d in (summary.get("decoders") or {}).items():
            t.add_row(f"  {name}", fmt(d.get("test_accuracy")))
    print_table(t)
    for w in (summary or {}).get("warnings") or []:  # silent readouts (snnrun/engine/health.py)
        console.print(f"[bold yellow]warning:[/] {escape(w)}", soft_wrap=True)

    diff = default_config_diff(run_dir)
    d = Table(title="config vs. the model's defaults", title_justify="left")
    for col in ("key", "default", "this run"):
        d.add_column(col)
    for k, (default, ours) in diff.items():
        d.add_row(k, escape(str(default)), escape(str(ours)))  # config values, literally
    print_table(d) if diff else console.print("config: the model's defaults, unchanged")

    written = []
    if save_learning_curves_png(records, run_dir / "learning_curves.png", f"learning curves: {run_dir.name}"):
        written.append(run_dir / "learning_curves.png")
    if summary and summary.get("confusion"):
        written.append(run_dir / "confusion.png")
        save_confusion_png(torch.tensor(summary["confusion"]), written[-1],
                           f"test, {summary['best_decoder']}: accuracy {summary['test_accuracy']:.3f}")

    if save_receptive_fields(exp, run_dir / "weights.png"):
        written.append(run_dir / "weights.png")
    written += draw_activity(exp, run_dir)
    console.print("figures: " + ", ".join(p.name for p in written))
    return {"summary": summary, "diff": diff, "figures": written}
