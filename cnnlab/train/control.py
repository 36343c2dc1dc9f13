"""When training stops before its last epoch: Ctrl-C or SIGTERM (after a checkpoint), a loss
that is no longer finite, and early stopping. In a torchrun job every process agrees on it."""

from __future__ import annotations

import math
import signal
import threading

import torch
import torch.distributed as dist
from torch import Tensor

from ..device import Dist, all_reduce


class StopRequest:
    """Within `with`, SIGINT (Ctrl-C) and SIGTERM only record that a stop was asked for; the loop
    stops at the next step, after writing a checkpoint. A second Ctrl-C stops at once."""

    def __init__(self):
        self.signal, self._previous = None, {}

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def agree(stop_signal: str | None, bad_step: Tensor, d: Dist) -> tuple[str | None, int]:
    """The stop request and the first non-finite step, agreed by all processes of a torchrun job
    (a process that stopped alone would leave the others waiting in the next all-reduce)."""
    if d.world == 1:
        return stop_signal, int(bad_step.item())
    flags = torch.stack(
        [
            torch.tensor(float(stop_signal is not None), device=bad_step.device),
            torch.where(bad_step < 0, torch.inf, bad_step.float()),
        ]
    )
    flags[0] = -flags[0]  # one MIN reduction: any process's stop, and the earliest bad step
    all_reduce(flags, d, op=dist.ReduceOp.MIN)
    first_bad = -1 if math.isinf(flags[1].item()) else int(flags[1].item())
    return (stop_signal or "SIGTERM") if flags[0].item() < 0 else None, first_bad


def score(row: dict) -> float:
    """What makes a model the best so far: validation metrics when there is a validation split,
    else the test set's; mean IoU, top-1 accuracy, or minus the loss of a regression."""
    m = "val_" if "val_loss" in row else "test_"
    return row.get(f"{m}miou", row.get(f"{m}top1", -row[f"{m}loss"]))


def stalled(history: list[dict], patience: int | None) -> dict | None:
    """With early stopping: the best epoch's row once `patience` epochs have passed without a
    better one (the first of equal scores counts), else None."""
    if not patience or not history:
        return None
    best = max(range(len(history)), key=lambda i: score(history[i]))
    return history[best] if len(history) - 1 - best >= patience else None
