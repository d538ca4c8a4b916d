"""PNG figures of a run: learned receptive fields and the confusion matrix."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from snnrun.run.files import atomic_write  # noqa: E402
from snnrun.run.ranks import rank_zero_only  # noqa: E402


def save_figure(fig, path: str | Path) -> None:
    """The figure as a PNG, written atomically (a full disk leaves no half image, no temp file)."""
    atomic_write(path, lambda f: fig.savefig(f, dpi=120, format=Path(path).suffix.lstrip(".") or "png"))


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


@rank_zero_only  # data-parallel runs: one writer
def save_weights_png(w: torch.Tensor, image_shape, path: Path, title: str = "") -> None:
    grid = receptive_field_grid(w, image_shape)
    fig, ax = plt.subplots(figsize=(6, 6))
    im = ax.imshow(grid.numpy(), cmap="hot_r", interpolation="nearest")
    ax.set_title(title or "input weights per neuron")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    idx = y_true.long() * n_classes + y_pred.long()
    return torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


@rank_zero_only
def save_confusion_png(cm: torch.Tensor, path: Path, title: str = "") -> None:
    n = cm.shape[0]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(cm.numpy(), cmap="Blues")
    for i in range(n):
        for j in range(n):
            v = int(cm[i, j])
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_title(title or "confusion matrix (test)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def save_learning_curves_png(records: list[dict], path: Path, title: str = "") -> bool:
    """Accuracies (top) and losses or images/s (bottom) of the records in metrics.jsonl against
    training samples seen (or the step number), one line per metric and phase.

    Works for any loop's records: every numeric leaf whose name contains "accuracy" or "loss" is
    drawn (``running_accuracy/all_activity``, ``val_accuracy`` ...); the test accuracy is a dashed
    line. Returns False (no file) when there is nothing to draw.
    """
    from snnrun.run.console import flatten

    series: dict[str, list] = {}
    tests = []
    for r in records:
        if r.get("phase") == "test":
            if r.get("test_accuracy") is not None:
                tests.append(r["test_accuracy"])
            continue
        x = r.get("samples", r.get("step"))
        for k, v in flatten(r).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and ("accuracy" in k or "loss" in k
                                                                            or k == "images_per_s"):
                series.setdefault(f"{r.get('phase', '')}: {k}" if k != "images_per_s" else k, []).append((x, v))
    acc = {k: v for k, v in series.items() if "accuracy" in k}
    low = {k: v for k, v in series.items() if "loss" in k} or {k: v for k, v in series.items() if k == "images_per_s"}
    if not acc and not low:
        return False
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=[2, 1])
    for k, pts in acc.items():
        ax.plot(*zip(*pts), marker=".", label=k)
    for t in tests:
        ax.axhline(t, color="k", ls="--", lw=1, label=f"test accuracy ({t:.3f})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "learning curves")
    for k, pts in low.items():
        ax2.plot(*zip(*pts), label=k)
    ax2.set_ylabel("loss" if any("loss" in k for k in low) else "images/s")
    if len(low) > 1:
        ax2.legend(fontsize=8)
    ax2.set_xlabel("training samples seen")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return True


def save_raster_png(trains: dict[str, torch.Tensor], dt: float, path: Path, title: str = "") -> None:
    """Spike raster of one sample: ``trains`` maps group names to (T, n) spike tensors."""
    fig, axes = plt.subplots(len(trains), 1, figsize=(8, 1.2 + 1.6 * len(trains)), sharex=True, squeeze=False)
    for ax, (name, s) in zip(axes[:, 0], trains.items()):
        t_idx, n_idx = torch.nonzero(s.float().cpu() > 0, as_tuple=True)
        ax.scatter(t_idx.numpy() * dt, n_idx.numpy(), s=2, marker="|", color="k")
        ax.set_ylabel(f"{name}\nneuron")
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
    axes[-1, 0].set_xlabel("time (ms)")
    axes[0, 0].set_title(title or "spike raster")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def save_membrane_png(v: torch.Tensor, neurons: list[int], dt: float, path: Path, title: str = "",
                      threshold: torch.Tensor | None = None) -> None:
    """Membrane potential traces ``v`` (T, n) of the chosen neurons of one sample."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    t = torch.arange(v.shape[0]).float().numpy() * dt
    for k, n in enumerate(neurons):
        line, = ax.plot(t, v[:, n].cpu().numpy(), lw=1, label=f"neuron {n}")
        if threshold is not None:
            ax.axhline(float(threshold[n]), color=line.get_color(), ls=":", lw=0.8)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("v (mV)")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or "membrane potential (dotted: threshold)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
