"""Datasets for dense prediction: MNIST scenes (generated offline from the real MNIST digits) and
Pascal VOC 2012 in its own folder layout.

Masks are uint8 (N, H, W) class indices; 255 marks pixels that count for nothing (VOC's
object boundaries), as in the VOC devkit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError
from .datasets import MNIST_CLASSES, Split, cached_split, data_root, load_dataset

IGNORE = 255
SCENE_CLASSES = ("background", *MNIST_CLASSES)
SCENES = {True: 10_000, False: 2_000}  # scenes per split
VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
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
    return cached_split(
        source,
        key,
        lambda: _draw_scenes(load_dataset("mnist", train=train, data_dir=data_dir), train, count, size, seed),
    )


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
        picks, corners, places = (
            rng.integers(len(ink), size=clutter),
            rng.integers(4, 16, (clutter, 2)),
            rng.integers(0, size - 8, (clutter, 2)),
        )
        for j, (y, x), (py, px) in zip(picks, corners, places):
            np.maximum(
                canvas[py : py + 8, px : px + 8], ink[j, y : y + 8, x : x + 8], out=canvas[py : py + 8, px : px + 8]
            )
        for _ in range(int(rng.integers(2, 5))):
            j, s = int(rng.integers(len(ink))), int(rng.integers(lo, hi + 1))
            d = np.asarray(Image.fromarray(ink[j]).resize((s, s), Image.BILINEAR))
            py, px = rng.integers(0, size - s + 1, 2)
            window = canvas[py : py + s, px : px + s]
            np.maximum(window, d, out=window)
            mask[py : py + s, px : px + s][d > 127] = labels[j] + 1
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
        raise DatasetError(
            f"{listing} is missing; give the VOC2012 folder (with JPEGImages, SegmentationClass "
            "and ImageSets/Segmentation)"
        )
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
                    raise DatasetError(
                        f"{mask_path}: a VOC mask is a palette (P) or grey PNG of class indices, got mode {m.mode}"
                    )
                if img.size != m.size:
                    raise DatasetError(
                        f"{mask_path}: {m.size[0]}x{m.size[1]} but its image is {img.size[0]}x{img.size[1]}"
                    )
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
