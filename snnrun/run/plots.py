"""PNG figures of a run: receptive fields, confusion matrix, learning curves, spike raster, membrane traces,
learning diagnostics.

Each figure has a ``*_figure`` builder that returns the matplotlib Figure (what tests inspect:
labelled axes with units, legends outside the data, the plotted data) and a ``save_*_png``
that writes and closes it. Every axis label names its unit in parentheses.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from snnrun.run.ranks import rank_zero_only


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported when the first figure is drawn
    (not at startup: it is ~0.5 s of the time before training starts)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


DIMENSIONLESS = "dimensionless"


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """Write ``fig`` (legends placed outside the axes are kept inside the image) and close it."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt = pyplot()
    plt.close(fig)


def voltage_unit(neuron) -> str:
    """The unit of a neuron group's membrane potential for axis labels.

    A class may say (``v_unit``); trainable (SpikingJelly-style) nodes and models whose docstring
    says unitless/dimensionless are dimensionless (threshold 1); one whose docstring speaks of mV
    is in mV; otherwise a threshold of more than 5 in
    magnitude is BindsNET's mV (-52 mV, 13 mV above rest); anything else is in the model's units."""
    import inspect
    import re

    from snnrun.components.neurons.trainable import TrainableNode

    cls = type(neuron)
    if getattr(cls, "v_unit", None):
        return str(cls.v_unit)
    doc = (inspect.getdoc(cls) or "").lower()
    if isinstance(neuron, TrainableNode) or "unitless" in doc or DIMENSIONLESS in doc:
        return DIMENSIONLESS
    if re.search(r"\bmv\b", doc):
        return "mV"
    for name in ("thresh", "v_th", "v_threshold", "threshold_value"):
        value = getattr(neuron, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return "mV" if abs(value) > 5 else DIMENSIONLESS
        if isinstance(value, torch.Tensor) and value.numel():
            return "mV" if float(value.abs().max()) > 5 else DIMENSIONLESS
    return "model units"


def receptive_field_grid(w: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
    """Tile the columns of an input->neuron weight matrix (n_in, n_out) as images in a square grid."""
    h, wd = image_shape[-2], image_shape[-1]
    n_out = w.shape[1]
    side = math.ceil(math.sqrt(n_out))
    grid = torch.full((side * h, side * wd), float("nan"))
    fields = w.detach().float().cpu().t().reshape(n_out, -1, h, wd).mean(1)
    for k in range(n_out):
        r, c = divmod(k, side)
        grid[r * h:(r + 1) * h, c * wd:(c + 1) * wd] = fields[k]
    return grid


def weights_figure(w: torch.Tensor, image_shape, title: str = ""):
    grid = receptive_field_grid(w, image_shape)
    h, wd = image_shape[-2], image_shape[-1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    im = ax.imshow(grid.numpy(), cmap="hot_r", interpolation="nearest")
    ax.set_title(title or "input weights per neuron")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"input pixel column (pixels; one {h}x{wd} tile per neuron, row by row)")
    ax.set_ylabel("input pixel row (pixels)")
    fig.colorbar(im, ax=ax, fraction=0.046).set_label("weight (connection units)")
    return fig


@rank_zero_only  # data-parallel runs: one writer
def save_weights_png(w: torch.Tensor, image_shape, path: Path, title: str = "") -> None:
    save_figure(weights_figure(w, image_shape, title), path)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    idx = y_true.long() * n_classes + y_pred.long()
    return torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_figure(cm: torch.Tensor, title: str = ""):
    n = cm.shape[0]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = ax.imshow(cm.numpy(), cmap="Blues")
    for i in range(n):
        for j in range(n):
            v = int(cm[i, j])
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted class (label index)")
    ax.set_ylabel("true class (label index)")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_title(title or "confusion matrix (test)")
    fig.colorbar(im, ax=ax, fraction=0.046).set_label("test samples (count)")
    return fig


@rank_zero_only
def save_confusion_png(cm: torch.Tensor, path: Path, title: str = "") -> None:
    save_figure(confusion_figure(cm, title), path)


def learning_curve_series(records: list[dict]) -> tuple[dict[str, list], dict[str, list], list[float]]:
    """(accuracy series, loss or training-speed series, test accuracies) from metrics.jsonl records.

    x is the number of training samples seen (``samples``, else the step). Every numeric leaf
    whose name contains "accuracy" or "loss" is a series (``train: running_accuracy/all_activity``,
    ``val: val_accuracy`` ...). Speed is that of training only: the label pass and test run with
    learning off, and their ``samples`` count the split they pass over, not training progress."""
    from snnrun.run.console import flatten

    series: dict[str, list] = {}
    tests = []
    for r in records:
        phase = r.get("phase", "")
        if phase == "test":
            if r.get("test_accuracy") is not None:
                tests.append(r["test_accuracy"])
            continue
        if phase == "assign":  # learning off, after (or between) training epochs
            continue
        x = r.get("samples", r.get("step"))
        for k, v in flatten(r).items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if "accuracy" in k or "loss" in k:
                series.setdefault(f"{phase}: {k}", []).append((x, v))
            elif k == "images_per_s" and phase == "train":
                series.setdefault("train: images/s", []).append((x, v))
    acc = {k: v for k, v in series.items() if "accuracy" in k}
    low = {k: v for k, v in series.items() if "loss" in k} or \
        {k: v for k, v in series.items() if k == "train: images/s"}
    return acc, low, tests


def learning_curves_figure(records: list[dict], title: str = ""):
    """Accuracies (top) and losses or training images/s (bottom) against training samples seen;
    the test accuracy a dashed line. None when there is nothing to draw."""
    acc, low, tests = learning_curve_series(records)
    if not acc and not low:
        return None
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=[2, 1])
    for k, pts in acc.items():
        ax.plot(*zip(*pts), marker=".", label=k)
    for t in tests:
        ax.axhline(t, color="k", ls="--", lw=1, label=f"test accuracy ({t:.3f})")
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_ylim(0, 1.02)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    ax.set_title(title or "learning curves")
    for k, pts in low.items():
        ax2.plot(*zip(*pts), marker=".", label=k)
    is_loss = any("loss" in k for k in low)
    ax2.set_ylabel("loss (per sample)" if is_loss else "training speed (images/s)")
    if low:
        ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    ax2.set_xlabel("training samples seen (images)")
    fig.tight_layout()
    return fig


def save_learning_curves_png(records: list[dict], path: Path, title: str = "") -> bool:
    """learning_curves_figure written to ``path``; False (no file) when there is nothing to draw."""
    fig = learning_curves_figure(records, title)
    if fig is None:
        return False
    save_figure(fig, path)
    return True


def raster_figure(trains: dict[str, torch.Tensor], dt: float, title: str = ""):
    """Spike raster of one sample: ``trains`` maps group names to (T, n) spike tensors."""
    plt = pyplot()
    fig, axes = plt.subplots(len(trains), 1, figsize=(8, 1.2 + 1.6 * len(trains)), sharex=True, squeeze=False)
    for ax, (name, s) in zip(axes[:, 0], trains.items()):
        t_idx, n_idx = torch.nonzero(s.float().cpu() > 0, as_tuple=True)
        ax.scatter(t_idx.numpy() * dt, n_idx.numpy(), s=2, marker="|", color="k")
        ax.set_ylabel(f"{name}\nneuron (index)")
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
        ax.set_xlim(0, s.shape[0] * dt)
    axes[-1, 0].set_xlabel("time (ms)")
    axes[0, 0].set_title(title or "spike raster")
    fig.tight_layout()
    return fig


def save_raster_png(trains: dict[str, torch.Tensor], dt: float, path: Path, title: str = "") -> None:
    save_figure(raster_figure(trains, dt, title), path)


def most_active(spikes: torch.Tensor, k: int) -> list[int]:
    """Up to ``k`` neurons of (T, n) ``spikes`` that spiked most, most first (ties: lower index);
    neurons that never spiked are not among them."""
    counts = spikes.float().sum(0)
    order = sorted(range(counts.numel()), key=lambda i: (-float(counts[i]), i))
    return [i for i in order[:k] if counts[i] > 0]


def membrane_figure(v: torch.Tensor, neurons: list[int], dt: float, title: str = "",
                    threshold: torch.Tensor | None = None, spikes: torch.Tensor | None = None,
                    unit: str = "mV"):
    """Membrane potential traces ``v`` (T, n) of the chosen neurons of one sample; with
    ``spikes`` (T, n) the legend gives each neuron's spike count and spikes are marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    t = torch.arange(v.shape[0]).float().numpy() * dt
    for n in neurons:
        label = f"neuron {n}"
        if spikes is not None:
            label += f" ({int(spikes[:, n].sum())} spikes)"
        line, = ax.plot(t, v[:, n].cpu().numpy(), lw=1, label=label)
        if spikes is not None:  # v may be recorded after the reset: mark spikes at the threshold
            at = torch.nonzero(spikes[:, n] > 0).flatten()
            level = float(threshold[n]) if threshold is not None else float(v[:, n].max())
            if len(at):
                ax.plot(at.numpy() * dt, [level] * len(at), "|", color=line.get_color(), ms=10)
        if threshold is not None:
            ax.axhline(float(threshold[n]), color=line.get_color(), ls=":", lw=0.8)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(f"membrane potential v ({unit})")
    ax.set_xlim(0, v.shape[0] * dt)
    if neurons:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(title or "membrane potential (dotted: threshold)")
    fig.tight_layout()
    return fig


def save_membrane_png(v: torch.Tensor, neurons: list[int], dt: float, path: Path, title: str = "",
                      threshold: torch.Tensor | None = None, spikes: torch.Tensor | None = None,
                      unit: str = "mV") -> None:
    save_figure(membrane_figure(v, neurons, dt, title, threshold, spikes, unit), path)


def diagnostics_rows(metrics_path: Path) -> list[tuple[int, dict]]:
    """(samples seen, diagnostics) of the training lines of a metrics.jsonl (snnrun/engine/diagnostics.py)."""
    import json

    rows = []
    for line in Path(metrics_path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("phase") == "train" and rec.get("diagnostics"):
            rows.append((rec["samples"], rec["diagnostics"]))
    return rows


def diagnostics_figure(rows: list[tuple[int, dict]], title: str = ""):
    """Learning diagnostics against samples seen: distinct winners and neurons learning per batch,
    the top winner's share, samples learned from and silent samples, adaptive thresholds, the
    learned weights' mean column L2 norm and relative change per window. None without rows."""
    if not rows:
        return None
    x = [s for s, _ in rows]
    last = rows[-1][1]
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)

    def legend(ax):
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)

    ax = axes[0, 0]
    ax.plot(x, [d["winners"] for _, d in rows], label="distinct winners per window")
    ax.plot(x, [d["learning_per_batch"] for _, d in rows], label="neurons learning per batch")
    ax.set_ylabel("neurons (count)")
    legend(ax)
    ax = axes[0, 1]
    ax.plot(x, [d["top_win_share"] for _, d in rows], label="top winner's share")
    ax.plot(x, [d["silent"] for _, d in rows], label="silent samples")
    if "samples_learned" in last:
        ax.plot(x, [d.get("samples_learned") for _, d in rows], label="samples learned from")
    ax.set_ylabel(f"share of samples ({DIMENSIONLESS})")
    legend(ax)
    ax = axes[1, 0]
    for g in last.get("theta", {}):
        ax.plot(x, [d["theta"][g]["mean"] for _, d in rows], label=f"{g} theta mean")
        ax.plot(x, [d["theta"][g]["max"] for _, d in rows], "--", label=f"{g} theta max")
    ax.set_ylabel("adaptive threshold theta (mV)")
    ax.set_xlabel("training samples seen (images)")
    if last.get("theta"):
        legend(ax)
    ax = axes[1, 1]
    for c in last.get("weights", {}):
        ax.plot(x, [d["weights"][c]["l2_mean"] for _, d in rows], label=f"{c} mean column L2 norm")
        ax.plot(x, [d["weights"][c]["change"] for _, d in rows], "--", label=f"{c} relative change per window")
    ax.set_ylabel(f"weights ({DIMENSIONLESS})")
    ax.set_xlabel("training samples seen (images)")
    if last.get("weights"):
        legend(ax)
    fig.suptitle(title or "learning diagnostics")
    fig.tight_layout()
    return fig


@rank_zero_only
def save_diagnostics_png(metrics_path: Path, path: Path, title: str = "") -> bool:
    fig = diagnostics_figure(diagnostics_rows(metrics_path), title)
    if fig is None:
        return False
    save_figure(fig, path)
    return True
