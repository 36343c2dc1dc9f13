import os
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
