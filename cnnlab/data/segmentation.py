"""Dense prediction data and metrics: MNIST scenes (generated offline from the real MNIST
digits), Pascal VOC 2012 in its own folder layout, pixel accuracy and mean IoU, and pictures
of input / prediction / ground truth.

Masks are uint8 (N, H, W) class indices; 255 marks pixels that count for nothing (VOC's
object boundaries), as in the VOC devkit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .data import MNIST_CLASSES, Split, _cached, data_root, load_dataset
from .errors import DatasetError

IGNORE = 255
SCENE_CLASSES = ("background", *MNIST_CLASSES)
SCENES = {True: 10_000, False: 2_000}  # scenes per split
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
SEGMENTATION_DATASETS = ("mnist-scenes", "voc:PATH")


def is_segmentation(dataset: str) -> bool:
    return dataset == "mnist-scenes" or dataset.startswith("voc:")


def mnist_scenes(train: bool = True, count: int | None = None, size: int = 64, data_dir=None, seed: int = 0) -> Split:
    """`count` scenes of `size` x `size` pixels (64 to 128), each from its own random stream
    (seed, split, index), so scene i is always the same: 4 to 8 clutter patches (8x8 pieces of
    random digits, labelled background), then 2 to 4 whole MNIST digits (of the matching MNIST
    split) scaled to 20-36 pixels (x size / 64) at random places, drawn with max(). A pixel is
    labelled with its digit's class (1 + digit) where that digit's ink is above half intensity,
    the last digit drawn winning; everything else is background (0). Cached like the datasets."""
    if not 64 <= size <= 128:
        raise DatasetError(f"MNIST scenes are 64 to 128 pixels wide, got {size}")
    count = SCENES[train] if count is None else count
    source = data_root(data_dir) / "mnist" / f"{'train' if train else 't10k'}-images-idx3-ubyte.gz"
    if not source.exists():
        load_dataset("mnist", train=train, data_dir=data_dir)  # downloads it, or says where to put it
    key = f"mnist-scenes-v1-{'train' if train else 'test'}-{count}-{size}-{seed}"
    return _cached(source, key, lambda: _draw_scenes(load_dataset("mnist", train=train, data_dir=data_dir),
                                                     train, count, size, seed))


def _draw_scenes(digits: Split, train: bool, count: int, size: int, seed: int) -> Split:
    from PIL import Image

    ink, labels = digits.images[:, 0].numpy(), digits.labels.numpy()
    images = np.zeros((count, 1, size, size), dtype=np.uint8)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    lo, hi = round(20 * size / 64), round(36 * size / 64)
    for i in range(count):
        rng = np.random.default_rng([seed, int(train), i])
        canvas, mask = images[i, 0], masks[i]
        clutter = int(rng.integers(4, 9))
        picks, corners, places = rng.integers(len(ink), size=clutter), rng.integers(4, 16, (clutter, 2)), \
            rng.integers(0, size - 8, (clutter, 2))
        for j, (y, x), (py, px) in zip(picks, corners, places):
            np.maximum(canvas[py:py + 8, px:px + 8], ink[j, y:y + 8, x:x + 8], out=canvas[py:py + 8, px:px + 8])
        for _ in range(int(rng.integers(2, 5))):
            j, s = int(rng.integers(len(ink))), int(rng.integers(lo, hi + 1))
            d = np.asarray(Image.fromarray(ink[j]).resize((s, s), Image.BILINEAR))
            py, px = rng.integers(0, size - s + 1, 2)
            window = canvas[py:py + s, px:px + s]
            np.maximum(window, d, out=window)
            mask[py:py + s, px:px + s][d > 127] = labels[j] + 1
    return Split(torch.from_numpy(images), torch.from_numpy(masks), SCENE_CLASSES)


def load_voc(root: str | os.PathLike, train: bool = True, size: int = 256) -> Split:
    """Pascal VOC 2012 segmentation from its devkit layout: ROOT/ImageSets/Segmentation/
    {train,val}.txt, ROOT/JPEGImages/ID.jpg, ROOT/SegmentationClass/ID.png (palette PNGs whose
    indices are the classes, 255 on boundaries). Every pair is resized to `size` x `size`
    (bilinear images, nearest-neighbour masks) so the split fits one tensor."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if (root / "VOCdevkit" / "VOC2012").is_dir():
        root = root / "VOCdevkit" / "VOC2012"
    listing = root / "ImageSets" / "Segmentation" / ("train.txt" if train else "val.txt")
    if not listing.exists():
        raise DatasetError(f"{listing} is missing; give the VOC2012 folder (with JPEGImages, SegmentationClass "
                           "and ImageSets/Segmentation)")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise DatasetError(f"{listing} lists no images")
    images = torch.empty(len(ids), 3, size, size, dtype=torch.uint8)
    masks = torch.empty(len(ids), size, size, dtype=torch.uint8)
    for i, name in enumerate(ids):
        img_path, mask_path = root / "JPEGImages" / f"{name}.jpg", root / "SegmentationClass" / f"{name}.png"
        try:
            with Image.open(img_path) as img, Image.open(mask_path) as m:
                if m.mode not in ("P", "L"):
                    raise DatasetError(f"{mask_path}: a VOC mask is a palette (P) or grey PNG of class indices, "
                                       f"got mode {m.mode}")
                if img.size != m.size:
                    raise DatasetError(f"{mask_path}: {m.size[0]}x{m.size[1]} but its image is {img.size[0]}x{img.size[1]}")
                pic = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
                cls = np.asarray(m.resize((size, size), Image.NEAREST))
        except (OSError, UnidentifiedImageError, SyntaxError) as e:
            raise DatasetError(f"{img_path.parent.parent}: cannot read {name} ({e})") from None
        bad = cls[(cls >= len(VOC_CLASSES)) & (cls != IGNORE)]
        if bad.size:
            raise DatasetError(f"{mask_path}: class index {int(bad[0])} is not a VOC class (0-20, or 255)")
        images[i] = torch.from_numpy(pic.copy()).permute(2, 0, 1)
        masks[i] = torch.from_numpy(cls.copy())
    return Split(images, masks, VOC_CLASSES)


def load_segmentation(dataset: str, train: bool, data_dir=None) -> Split:
    if dataset == "mnist-scenes":
        return mnist_scenes(train, data_dir=data_dir)
    if dataset.startswith("voc:"):
        return load_voc(dataset[4:], train)
    raise DatasetError(f"unknown segmentation dataset {dataset!r}; use {' or '.join(SEGMENTATION_DATASETS)}")


def confusion(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Pixel confusion matrix (rows: true class, columns: predicted), void pixels left out."""
    keep = target != IGNORE
    idx = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes ** 2).view(num_classes, num_classes)


def scores(conf: Tensor) -> dict:
    """Pixel accuracy, mean accuracy over classes, mean IoU and per-class IoU (Long et al. §5:
    IoU = n_ii / (t_i + sum_j n_ji - n_ii)); classes absent from both truth and prediction are
    left out of the means."""
    conf = conf.double()
    tp, truth, predicted = conf.diag(), conf.sum(1), conf.sum(0)
    union = truth + predicted - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), torch.nan)
    has_truth = truth > 0
    return {"pixel_accuracy": (tp.sum() / conf.sum().clamp_min(1)).item(),
            "mean_accuracy": (tp[has_truth] / truth[has_truth]).mean().item() if has_truth.any() else 0.0,
            "miou": iou[present].mean().item() if present.any() else 0.0,
            "iou": [None if v != v else round(v, 6) for v in iou.tolist()]}


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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .checkpoint import save_figure

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
    save_figure(fig, path, dpi=80)
    return path
