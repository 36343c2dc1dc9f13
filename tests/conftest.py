import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

os.environ["CNNLAB_OFFLINE"] = "1"  # tests never download: a missing file must fail, not fetch
DATA = Path(os.environ.get("CNNLAB_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def tiny_mnist_run(out: Path, model: str = "mlp") -> list[str]:
    """The words of `cnnlab train` for a run of a few seconds: one epoch of 5 MNIST digits a class."""
    return f"train {model} --dataset mnist --train-per-class 5 --test-per-class 2 --epochs 1".split() + [
        "--data-dir",
        str(DATA),
        "--out",
        str(out),
    ]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def n_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def temperatures_csv(path, days=900, seed=0):
    """Daily mean temperatures (a yearly cycle plus noise) as the lectures' table: the last three
    days' means and tomorrow's."""
    import math
    import random

    rng = random.Random(seed)
    t = [10 + 8 * math.sin(2 * math.pi * d / 365) + rng.gauss(0, 1.5) for d in range(days)]
    lines = ["day_minus_2,day_minus_1,today,tomorrow"]
    lines += [f"{t[i - 2]:.2f},{t[i - 1]:.2f},{t[i]:.2f},{t[i + 1]:.2f}" for i in range(2, days - 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


class Killed(Exception):
    """A training process dying, as tests stage it."""


@contextmanager
def killed_inside_epoch(epoch: int, step: int):
    """Training inside the block dies (raises Killed) right after writing the checkpoint taken
    after `step` steps of epoch `epoch`, as a process killed there would."""
    from cnnlab.train.folder import RunFolder

    save = RunFolder.save_checkpoint

    def save_then_die(self, *args, **kwargs):  # (model, opt, schedule, gen, progress, epochs done, inside, ...)
        save(self, *args, **kwargs)
        if len(args) > 6 and args[5] == epoch - 1 and args[6]["step_in_epoch"] == step:
            raise Killed

    with pytest.MonkeyPatch.context() as m, pytest.raises(Killed):
        m.setattr(RunFolder, "save_checkpoint", save_then_die)
        yield
