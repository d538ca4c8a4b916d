"""PNG figures of a run: learned receptive fields and the confusion matrix."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


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


def save_weights_png(w: torch.Tensor, image_shape, path: Path, title: str = "") -> None:
    grid = receptive_field_grid(w, image_shape)
    fig, ax = plt.subplots(figsize=(6, 6))
    im = ax.imshow(grid.numpy(), cmap="hot_r", interpolation="nearest")
    ax.set_title(title or "input weights per neuron")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    idx = y_true.long() * n_classes + y_pred.long()
    return torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


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
    fig.savefig(path, dpi=120)
    plt.close(fig)
