"""torchrun with DistributedDataParallel: two CPU processes (gloo) on the same global batch reach
the weights one process reaches."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import pytest
import torch
from conftest import DATA

from cnnlab.checkpoint import load, read_metadata
from cnnlab.cli import main

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
    "--test-per-class",
    "200",
    "--data-dir",
    str(DATA),
]


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> Path:
    """The run of ARGS in one process (in this one: the same command, without a launch)."""
    run = tmp_path_factory.mktemp("one") / "run"
    assert main([*ARGS, "--out", str(run)]) == 0
    return run


def test_two_gloo_processes_match_one(tmp_path, one):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
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
    a, _ = load(one / "model.safetensors")
    b, meta = load(tmp_path / "two" / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert not torch.equal(a["fc.weight"], torch.zeros_like(a["fc.weight"]))
    # metrics are reduced over both processes: the test set is counted once, fully
    one_metrics = (one / "metrics.jsonl").read_text().splitlines()
    two_metrics = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    import json

    ra, rb = json.loads(one_metrics[-1]), json.loads(two_metrics[-1])
    assert abs(ra["test_top1"] - rb["test_top1"]) <= 1 / 2000 and abs(ra["train_loss"] - rb["train_loss"]) < 1e-4


def torchrun(*options: str) -> list[str]:
    return [str(Path(sys.executable).with_name("torchrun")), *options, "-m", "cnnlab"]


def test_two_machines_joined_by_c10d_rendezvous_match_one_process(tmp_path, one):
    """Two torchrun launches, as on two machines (here both on the loopback address), one process each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    machine = torchrun(
        "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=job"
    )
    nodes = [
        subprocess.Popen(
            [*machine, *ARGS, "--out", str(tmp_path / "two")], stdout=PIPE, stderr=PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-2000:] for _, err in outputs]
    assert sum(out.count("distributed: 2 processes, global batch 64 (32 per process)") for out, _ in outputs) == 1
    a, _ = load(one / "model.safetensors")
    b, _ = load(tmp_path / "two" / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_a_job_torchrun_restarts_continues_its_own_run_from_its_last_checkpoint(tmp_path, monkeypatch):
    """torchrun --max-restarts runs the same command again after a worker dies: the job continues
    from its own checkpoint inside the epoch (the same weights as never stopped); a run of another
    job in --out is not continued."""
    from cnnlab.train.folder import RunFolder

    args = [*ARGS, "--max-steps", "60", "--checkpoint-steps", "20", "--out", str(tmp_path / "straight")]
    assert main(args) == 0
    straight, _ = load(tmp_path / "straight" / "model.safetensors")
    run, real = tmp_path / "job", RunFolder.save_checkpoint

    def die_after_the_second(self, *a):  # a worker killed after the checkpoint of step 40
        real(self, *a)
        if len(a) >= 7 and a[4].steps_done == 40:  # the checkpoint inside an epoch
            raise KeyboardInterrupt

    args[-1] = str(run)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-1")
    with monkeypatch.context() as m:
        m.setattr(RunFolder, "save_checkpoint", die_after_the_second)
        assert main(args) == 130
    assert read_metadata(run / "checkpoint.safetensors")["job"] == "job-1"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-2")  # another job: not its run to continue
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert main(args) == 2
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-1")  # its own restart: continues by itself
    assert main(args) == 0
    resumed, meta = load(run / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)  # bit for bit


def steps_saved(run: Path) -> int:
    return (read_metadata(run / "checkpoint.safetensors") or {}).get("steps_done", 0)


def workers(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if "cnnlab" in Path(f"/proc/{c}/cmdline").read_text()]


def test_a_worker_killed_mid_epoch_makes_torchrun_restart_a_job_that_ends_bit_identical(tmp_path):
    """torchrun --max-restarts=1: SIGKILL one of two workers inside an epoch; torchrun restarts the
    job, which continues from its last in-epoch checkpoint by itself and ends with the weights of a
    job never interrupted. (Before each attempt had its own keys in torchrun's store, the restarted
    processes read the dead one's address about every other time and the job failed.)"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [*ARGS, "--max-steps", "120", "--checkpoint-steps", "20"]  # one epoch is 938 steps
    job = torchrun("--standalone", "--nproc-per-node=2", "--max-restarts=1")
    straight = subprocess.run(
        [*job, *args, "--out", str(tmp_path / "straight")], capture_output=True, text=True, env=env
    )
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = tmp_path / "killed"
    proc = subprocess.Popen([*job, *args, "--out", str(run)], stdout=PIPE, stderr=PIPE, text=True, env=env)
    end = time.time() + 120
    while steps_saved(run) < 40:
        assert proc.poll() is None and time.time() < end, "no checkpoint came"
        time.sleep(0.02)
    os.kill(workers(proc.pid)[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "torchrun restarted the job: continuing from the last checkpoint" in out
    assert load(run / "checkpoint.safetensors")[1]["steps_done"] == 120
    a, _ = load(tmp_path / "straight" / "model.safetensors")
    b, _ = load(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
