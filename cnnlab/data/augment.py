"""Data augmentation of whole batches on the device, in one pass: the images of a batch are
transformed together (one random draw per image), so no per-image Python or PIL sits in the
training loop. Segmentation masks move with their images; what a transformation brings in
from outside the image is void (IGNORE).

The order is fixed: scale, rotate, crop, translate, flip, jitter, pca, noise on the 0-1 pixel
scale, then (after normalisation) cutout.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .normalization import LUMA
from .segmentation import IGNORE

# crop: 4-pixel padded random crops; translate: shifts up to 10 % of the size; flip: horizontal
# mirror; rotate: U(-15, 15) degrees; jitter: brightness, contrast, saturation x U(0.6, 1.4);
# noise: Gaussian, sigma 0.05; scale: VGG-style scale jittering (zoom x U(1, 1.3), random
# position); pca: AlexNet's PCA colour augmentation (alpha ~ N(0, 0.1) along the RGB principal
# components); cutout: a square of half the side zeroed after normalisation
AUGMENTATIONS = ("crop", "translate", "flip", "rotate", "jitter", "noise", "scale", "pca", "cutout")
ROTATE_DEGREES = 15  # "rotate": uniform in +-15 degrees


def augment_pixels(
    x: Tensor,
    y: Tensor,
    augment: tuple[str, ...],
    generator: torch.Generator | None,
    pca: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Every augmentation of `augment` that works on 0-1 pixels, on images `x` (N, C, H, W) and
    their labels or masks `y`; `pca` is (eigenvalues, eigenvectors) of the RGB covariance."""
    n, c, h, w = x.shape

    def rand(*shape):
        return torch.rand(*shape, device=x.device, generator=generator)

    if "scale" in augment:
        x = scale_jitter(x, rand)
    if "rotate" in augment:
        x, y = rotate(x, y, rand)
    for name, pad in (("crop", 4), ("translate", max(1, h // 10))):
        if name in augment:
            x, y = shift(x, y, pad, generator)
    if "flip" in augment:
        x, y = flip(x, y, rand)
    if "jitter" in augment:
        x = colour_jitter(x, rand)
    if "pca" in augment:
        x = pca_colour(x, pca, generator)
    if "noise" in augment:
        x = x + 0.05 * torch.randn(x.shape, device=x.device, generator=generator)
    return x, y


def scale_jitter(x: Tensor, rand) -> Tensor:
    """Zoom in by U(1, 1.3) at a random position, bilinear (VGG's scale jittering)."""
    n = x.shape[0]
    zoom = 1 / (1 + 0.3 * rand(n))
    shift_ = (1 - zoom).unsqueeze(1) * (2 * rand(n, 2) - 1)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = zoom, zoom
    theta[:, :, 2] = shift_
    return F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)


def rotate(x: Tensor, y: Tensor, rand) -> tuple[Tensor, Tensor]:
    """About the centre, by U(-15, 15) degrees, bilinear; the corners fill with black (and void)."""
    n, _, h, w = x.shape
    dev = x.device
    angle = (2 * rand(n) - 1) * math.radians(ROTATE_DEGREES)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.zeros(n, 2, 3, device=dev)  # the rotation in pixels, in affine_grid's [-1, 1] units
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin * h / w, sin * w / h, cos
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False)
    if y.ndim == 3:  # masks: the nearest class; what the rotation brings in from outside is void
        inside = F.grid_sample(torch.ones(n, 1, h, w, device=dev), grid, mode="nearest", align_corners=False)
        y = F.grid_sample(y.unsqueeze(1).float(), grid, mode="nearest", align_corners=False)
        y = torch.where(inside > 0, y, float(IGNORE)).squeeze(1).to(torch.uint8)
    return x, y


def shift(x: Tensor, y: Tensor, pad: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """A random window of the image zero-padded by `pad`, one offset per image (crop, translate)."""
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), device=dev, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), device=dev, generator=generator)
    rows = dy + torch.arange(h, device=dev).view(1, 1, h, 1)
    cols = dx + torch.arange(w, device=dev).view(1, 1, 1, w)
    x = padded[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1), rows, cols]
    if y.ndim == 3:
        y = F.pad(y, (pad, pad, pad, pad), value=IGNORE)[
            torch.arange(n, device=dev).view(n, 1, 1), rows[:, 0], cols[:, 0]
        ]
    return x, y


def flip(x: Tensor, y: Tensor, rand) -> tuple[Tensor, Tensor]:
    """Mirror each image (and mask) with probability 1/2."""
    flipped = rand(x.shape[0]) < 0.5
    x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(3), x)
    if y.ndim == 3:
        y = torch.where(flipped.view(-1, 1, 1), y.flip(2), y)
    return x, y


def colour_jitter(x: Tensor, rand) -> Tensor:
    """Brightness, contrast and (RGB) saturation, each x U(0.6, 1.4)."""
    n, c = x.shape[:2]
    b, k, sat = (0.6 + 0.8 * rand(n, 1, 1, 1) for _ in range(3))
    x = x * b
    x = (x - x.mean((1, 2, 3), keepdim=True)) * k + x.mean((1, 2, 3), keepdim=True)
    if c == 3:
        gray = (x * luma(x.device)).sum(1, keepdim=True)
        x = gray + sat * (x - gray)
    return x.clamp(0, 1)


@functools.cache
def luma(device: torch.device) -> Tensor:
    """The luma weights on `device`, made once: a copy from the host inside a captured step
    (--cuda-graph) would be an error."""
    return torch.tensor(LUMA, device=device).view(1, 3, 1, 1)


def pca_colour(x: Tensor, pca: tuple[Tensor, Tensor], generator: torch.Generator | None) -> Tensor:
    """AlexNet §4.1: add sum_i alpha_i lambda_i p_i to every pixel, alpha ~ N(0, 0.1) per image."""
    vals, vecs = pca
    n = x.shape[0]
    alpha = torch.randn(n, 3, device=x.device, generator=generator) * 0.1
    return x + ((alpha * vals) @ vecs.T).view(n, 3, 1, 1)


def cutout(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """DeVries & Taylor 2017: zero (the mean, once normalised) a square of half the side (16x16 on
    CIFAR-10) centred anywhere in the image, so it may reach past the border."""
    n, _, h, w = x.shape
    dev = x.device
    side = max(1, min(h, w) // 2)
    cy = torch.randint(0, h, (n, 1, 1), device=dev, generator=generator)
    cx = torch.randint(0, w, (n, 1, 1), device=dev, generator=generator)
    rows, cols = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
    hole = (
        (rows >= cy - side // 2)
        & (rows < cy - side // 2 + side)
        & (cols >= cx - side // 2)
        & (cols < cx - side // 2 + side)
    )
    return x.masked_fill(hole.unsqueeze(1), 0.0)
