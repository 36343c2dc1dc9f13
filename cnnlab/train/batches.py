"""The order and the batches of a training epoch: a permutation drawn from the run's generator,
cut into batches (in a torchrun job, each process its share of every batch). A checkpoint taken
inside an epoch keeps the order, so a resumed run continues the same epoch."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.loaders import FolderData
from ..device import Dist
from .config import TrainConfig


def full_batch_size(data, cfg: TrainConfig, d: Dist = Dist()) -> int:
    """The number of images in a full training batch of this process (a torchrun job splits
    every batch among its processes)."""
    if isinstance(data, FolderData):
        return data.process_batch_size(d.world)
    n = min(cfg.batch_size, len(data))
    return n // d.world + (d.rank < n % d.world)


def seen_images(steps: int, cfg: TrainConfig, data) -> int:
    """Training images in the first `steps` steps of an epoch (the last batch may be short)."""
    if cfg.overfit_batch:
        return min(cfg.batch_size, len(data)) * steps
    return min(steps * cfg.batch_size, len(data))


def epoch_order(data, cfg: TrainConfig, gen: torch.Generator, epoch: int) -> Tensor:
    """The order of the training examples in one epoch: a permutation drawn from the run's generator
    for data on the device; for folders (read by worker processes) one drawn from seed + epoch.
    A checkpoint taken inside an epoch stores it, so --resume continues the same epoch."""
    if cfg.overfit_batch:  # the same first batch every epoch, in the same order
        return torch.arange(min(cfg.batch_size, len(data)), device=data.labels.device)
    if isinstance(data, FolderData):
        return torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + epoch))
    return torch.randperm(len(data), device=data.labels.device, generator=gen)


def epoch_batches(
    data,
    cfg: TrainConfig,
    gen: torch.Generator,
    epoch: int,
    order: Tensor,
    d: Dist = Dist(),
    first_step: int = 0,
    indices: bool = False,
):
    """The training batches of an epoch in `order`, from step `first_step` on; augmentations draw
    from the run's generator (data on the device) or from seeds per epoch and step (folders).
    With `indices`, the examples' indices of each batch instead (a captured step makes the batch)."""
    start = first_step * cfg.batch_size
    if isinstance(data, FolderData):
        yield from data.batches(order[start:], d, seed=(cfg.seed * 100_003 + epoch) * 100_003 + first_step)
        return
    for begin in range(start, len(order), cfg.batch_size):
        if indices:
            yield order[begin : begin + cfg.batch_size]
            continue
        x, y = data.batch(order[begin : begin + cfg.batch_size], cfg.augment, gen)
        if d.world > 1:  # every process draws the same global batch and keeps its own part
            x, y = x.tensor_split(d.world)[d.rank], y.tensor_split(d.world)[d.rank]
        yield x, y
