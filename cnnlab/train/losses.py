"""What training minimises: the loss of a batch (cross-entropy with label smoothing, GoogLeNet's
auxiliary losses, squared error for a regression), mixup's blended batches, and the L1/L2
penalties on the weights."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.segmentation import IGNORE


def penalty(model: nn.Module, l1: float, l2: float) -> Tensor | float:
    """l1 * sum|w| + l2 * sum w^2 over weights (tensors of two or more dimensions)."""
    if not l1 and not l2:
        return 0.0
    weights = [p for p in model.parameters() if p.ndim > 1 and p.requires_grad]
    total = 0.0
    if l1:
        total = total + l1 * sum(p.abs().sum() for p in weights)
    if l2:
        total = total + l2 * sum(p.pow(2).sum() for p in weights)
    return total


def mix_batch(
    x: Tensor, y: Tensor, alpha: float, seed: int, step: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, float]:
    """mixup (Zhang et al. 2018): every image blended with another of the batch, lam x_i +
    (1 - lam) x_j, with lam ~ Beta(alpha, alpha) drawn once per batch as in the paper's code; the
    loss blends the two labels' losses the same way. (x, the partners' labels, lam). lam depends
    only on the seed and the step, so a resumed run draws the same ones (and waits for no device)."""
    lam = float(np.random.default_rng([seed, step]).beta(alpha, alpha))
    partner = torch.randperm(len(x), device=x.device, generator=generator)
    return lam * x + (1 - lam) * x[partner], y[partner], lam


def loss_fn(out, y: Tensor, label_smoothing: float) -> Tensor:
    """Cross-entropy; GoogLeNet's auxiliary classifiers add 0.3 x their losses (Szegedy et al. §5).
    Float targets (regression) get the mean squared error."""
    if y.is_floating_point():
        return F.mse_loss(out.squeeze(1), y)
    if isinstance(out, tuple):
        main, *aux = out
        return F.cross_entropy(main, y, label_smoothing=label_smoothing) + 0.3 * sum(
            F.cross_entropy(a, y, label_smoothing=label_smoothing) for a in aux
        )
    return F.cross_entropy(out, y, label_smoothing=label_smoothing, ignore_index=IGNORE)
