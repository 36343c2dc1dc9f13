"""The pictures of an evaluation: the confusion matrix, the misclassified test images, grids of
filters or feature maps, and segmentation predictions in VOC's colours."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.loaders import DeviceData
from ..data.segmentation import IGNORE
from ..files import atomic_file, pyplot, save_figure


def write_gallery(result: dict, path: Path, count: int = 32) -> Path | None:
    """A PNG of the first `count` misclassified test images, each titled true -> predicted (p)."""
    plt = pyplot()

    data, probs = result["_gallery"]
    predicted = probs.argmax(1)
    wrong = (predicted != data.labels).nonzero().flatten()[:count].tolist()
    if not wrong:
        return None
    cols = min(8, len(wrong))
    rows = math.ceil(len(wrong) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        img = shown_image(data, i)
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
        true, pred = data.classes[data.labels[i]], data.classes[predicted[i]]
        ax.set_title(f"{true} -> {pred}\n{100 * probs[i, predicted[i]].item():.0f}%", fontsize=7)
    fig.suptitle(f"misclassified: {len(wrong)} shown of {int((predicted != data.labels).sum())}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, dpi=110)


def shown_image(data, i: int) -> np.ndarray:
    """Test image `i` as it is shown (H, W, C), before normalisation: uint8 or floats in [0, 1]."""
    if isinstance(data, DeviceData):
        return data.images[i].permute(1, 2, 0).cpu().numpy()
    return np.asarray(data.dataset.read(i))


def write_confusion(result: dict, out_dir: Path) -> list[Path]:
    """confusion.csv and confusion.png (counts, rows true, columns predicted) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = list(result["per_class"])
    csv_path = out_dir / "confusion.csv"
    with atomic_file(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, result["confusion"]):
            w.writerow([name, *row])
    fig = confusion_figure(result["confusion"], classes, f"{result['dataset']}: top-1 {100 * result['top1']:.2f} %")
    return [csv_path, save_figure(fig, out_dir / "confusion.png", dpi=120)]


def confusion_figure(matrix: list[list[int]], classes: list[str], title: str):
    """The confusion matrix (rows true, columns predicted) as a figure, with counts up to 20 classes."""
    plt = pyplot()
    m = np.array(matrix)
    size = max(4, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=90)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                colour = "white" if m[i, j] > m.max() / 2 else "black"
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def grid_png(tiles: Tensor, path: Path, title: str, columns: int | None = None) -> Path:
    """Save (N, C, H, W) tiles (C = 1 or 3), each scaled to its own range, as one PNG grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(grid_figure(tiles, title, columns), path, dpi=100)


def grid_figure(tiles: Tensor, title: str, columns: int | None = None, tile_inches: float = 0.8):
    """(N, C, H, W) tiles (C = 1 or 3), each scaled to its own range, as one figure."""
    plt = pyplot()

    n = tiles.shape[0]
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    lo = tiles.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = tiles.flatten(1).max(1).values.view(-1, 1, 1, 1)
    tiles = ((tiles - lo) / (hi - lo).clamp_min(1e-12)).permute(0, 2, 3, 1).cpu().numpy()
    size = (cols * tile_inches + 0.4, rows * tile_inches + 0.6)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(tiles[i].squeeze(-1) if tiles.shape[-1] == 1 else tiles[i], cmap="gray", interpolation="nearest")
    fig.suptitle(title)
    return fig


def palette(num_classes: int) -> Tensor:
    """VOC's colour map (the devkit's bit-interleaving), one RGB row per class; 255 white."""
    colours = torch.zeros(256, 3, dtype=torch.uint8)
    for c in range(256):
        r = g = b = 0
        v = c
        for j in range(8):
            r |= ((v >> 0) & 1) << (7 - j)
            g |= ((v >> 1) & 1) << (7 - j)
            b |= ((v >> 2) & 1) << (7 - j)
            v >>= 3
        colours[c] = torch.tensor([r, g, b], dtype=torch.uint8)
    colours[IGNORE] = 255
    return colours


def render(images: Tensor, predictions: Tensor, targets: Tensor, path: Path, classes=()) -> Path:
    """A PNG with one row per example: input, prediction, ground truth (VOC colours)."""
    save_figure(masks_figure(images, predictions, targets, classes), path, dpi=80)
    return path


def masks_figure(images: Tensor, predictions: Tensor, targets: Tensor, classes=()):
    """One row per example: input, prediction, ground truth (VOC colours)."""
    plt = pyplot()

    colours = palette(len(classes)).numpy()
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    for i in range(n):
        img = images[i].permute(1, 2, 0).numpy()
        axes[i][0].imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray")
        axes[i][1].imshow(colours[predictions[i].numpy()])
        axes[i][2].imshow(colours[targets[i].numpy()])
        for ax in axes[i]:
            ax.axis("off")
    for ax, title in zip(axes[0], ("input", "prediction", "ground truth")):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
