"""torchrun with DistributedDataParallel: two CPU processes (gloo) on the same global batch reach
the weights one process reaches."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import DATA

from cnnlab.checkpoint import load

ARGS = [
    "train",
    "mlp",
    "--dataset",
    "mnist",
    "--epochs",
    "2",
    "--max-steps",
    "40",
    "--batch-size",
    "64",
    "--lr",
    "0.05",
    "--schedule",
    "cosine",
    "--augment",
    "crop",
    "--device",
    "cpu",
    "--data-dir",
    str(DATA),
]


def test_two_gloo_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "cnnlab", *ARGS, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "cnnlab", *ARGS, "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    assert "distributed: 2 processes, global batch 64 (32 per process)" in two.stdout
    # the first process speaks for the job: each line once (every process printed its own)
    assert two.stdout.count("training mlp on mnist") == 1 and two.stdout.count("test top-1") == 1, two.stdout
    a, _ = load(tmp_path / "one" / "model.safetensors")
    b, meta = load(tmp_path / "two" / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert not torch.equal(a["fc.weight"], torch.zeros_like(a["fc.weight"]))
    # metrics are reduced over both processes: the test set is counted once, fully
    one_metrics = (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    two_metrics = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    import json

    ra, rb = json.loads(one_metrics[-1]), json.loads(two_metrics[-1])
    assert abs(ra["test_top1"] - rb["test_top1"]) <= 2e-4 and abs(ra["train_loss"] - rb["train_loss"]) < 1e-4
