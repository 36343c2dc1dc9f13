"""Faults: killed and interrupted runs, diverging losses, bad files and hostile checkpoints."""

import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import DATA

import cnnlab
from cnnlab.checkpoint import load
from cnnlab.errors import CnnlabError, TrainingDiverged, WeightsError
from cnnlab.train import recipe, train
from cnnlab.weights import read_state_dict

# two epochs of the MLP on MNIST, 235 steps each, a checkpoint every 20 steps
SETTINGS = dict(epochs=2, batch_size=256, lr=0.05, checkpoint_steps=20, seed=0)
ARGS = ["--epochs", "2", "--batch-size", "256", "--lr", "0.05", "--checkpoint-steps", "20", "--seed", "0"]


def cli(run: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        "mlp",
        "--dataset",
        "mnist",
        "--data-dir",
        str(DATA),
        "--out",
        str(run),
        *ARGS,
        *extra,
    ]


def steps_saved(run: Path) -> int:
    try:
        return load(run / "checkpoint.safetensors")[1]["steps_done"]
    except (WeightsError, KeyError, RuntimeError):  # RuntimeError: safetensors opened the file as it was replaced
        return 0


def wait_for(proc, run: Path, steps: int, timeout: float = 120) -> None:
    end = time.time() + timeout
    while steps_saved(run) < steps:
        assert proc.poll() is None, f"training ended early: {proc.stderr.read()}"
        assert time.time() < end, "no checkpoint came"
        time.sleep(0.05)


def snapshot(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (without --out, so without checkpoints): final weights and per-epoch test accuracy."""
    settings = {k: v for k, v in SETTINGS.items() if k != "checkpoint_steps"}
    result = train(recipe("mlp", "mnist", data_dir=str(DATA), **settings), log=lambda line: None)
    return result["model"].state_dict(), [r["test_top1"] for r in result["history"]]


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_reaches_the_same_weights(tmp_path, reference):
    run = tmp_path / "run"
    rng = random.Random(0)
    for i, target in enumerate((20, 230, 300)):  # in epoch 1, just before its end, in epoch 2
        proc = subprocess.Popen(
            cli(run, *(["--resume"] if i else [])), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        wait_for(proc, run, target)
        time.sleep(rng.uniform(0, 0.2))  # anywhere between two checkpoints, writes included
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert steps_saved(run) >= target  # the checkpoint on disk is whole and readable
    done = subprocess.run(cli(run, "--resume"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not list(run.glob("*.part"))  # temporary files of killed writes are cleared on resume
    weights, accuracies = reference
    final = cnnlab.load_model(run).state_dict()
    assert all(torch.equal(final[k], weights[k]) for k in weights)  # bit-identical on the CPU
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["test_top1"] for r in rows] == accuracies  # each epoch once, the same numbers
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert [len(s["loss"]) for s in steps] == [235, 235]  # every step once, those before each kill included
    for s, r in zip(steps, rows):
        assert sum(s["loss"]) / 235 == pytest.approx(r["train_loss"], rel=1e-5)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path, reference):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        cli(run, "--checkpoint-steps", "1000"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    while not (run / "config.json").exists():  # training has started
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signal.SIGTERM
    line = err.strip().splitlines()[-1]
    assert "stopped by SIGTERM" in line and f"cnnlab train mlp --out {run} --resume" in line
    assert "Traceback" not in err
    meta = load(run / "checkpoint.safetensors")[1]
    assert meta["step_in_epoch"] > 0  # saved inside the epoch, where it stopped
    resumed = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "mlp", "--out", str(run), "--resume"], capture_output=True, text=True
    )  # the run's own settings come back
    assert resumed.returncode == 0, resumed.stderr
    final = cnnlab.load_model(run).state_dict()
    assert all(torch.equal(final[k], v) for k, v in reference[0].items())


def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import cnnlab.train.loop as T

    real, calls = T.loss_fn, []

    def poisoned(out, y, smoothing):
        calls.append(1)
        loss = real(out, y, smoothing)
        return loss * float("nan") if len(calls) == 13 else loss

    monkeypatch.setattr(T, "loss_fn", poisoned)
    cfg = recipe("mlp", "mnist", data_dir=str(DATA), out=str(tmp_path / "run"), epochs=1, checkpoint_steps=5)
    with pytest.raises(TrainingDiverged, match=r"nan at step 13 \(epoch 1, lr [0-9.e-]+\).*smaller --lr"):
        train(cfg, log=lambda line: None)
    tensors, meta = load(tmp_path / "run" / "checkpoint.safetensors")
    assert meta["steps_done"] == 10  # the last checkpoint before the bad step
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model."))


def test_out_of_memory_names_the_batch_size(monkeypatch):
    def oom(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(cnnlab.models.mlp.MLP, "forward", oom)
    with pytest.raises(CnnlabError, match="out of memory on cpu at batch size 512; try --batch-size 256"):
        train(recipe("mlp", "mnist", data_dir=str(DATA), batch_size=512, max_steps=1), log=lambda line: None)


class Exploit:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_crafted_to_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    for name, payload in (
        ("exploit.pth", {"fc.weight": torch.zeros(2), "x": Exploit(marker)}),
        ("plain-pickle.pt", Exploit(marker)),
    ):
        path = tmp_path / name
        if name.endswith(".pth"):
            torch.save(payload, path)  # PyTorch's zip format with a malicious pickle inside
        else:
            path.write_bytes(pickle.dumps(payload))  # a bare pickle
        with pytest.raises(WeightsError, match=f"{name}: (refused|not a readable)"):
            read_state_dict(path)
        assert not marker.exists()
    torch.save({"state_dict": {"fc.weight": torch.ones(2, 2)}}, tmp_path / "ok.pth")
    assert torch.equal(read_state_dict(tmp_path / "ok.pth")["fc.weight"], torch.ones(2, 2))


def test_truncated_or_foreign_checkpoints_fail_clearly_and_change_nothing(tmp_path):
    from cnnlab.cli import main

    run = tmp_path / "run"
    train(recipe("mlp", "mnist", data_dir=str(DATA), out=str(run), max_steps=3), log=lambda line: None)
    ckpt = run / "checkpoint.safetensors"
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 2])  # truncated
    before = snapshot(run)
    argv = ["train", "mlp", "--out", str(run), "--resume", "--data-dir", str(DATA)]
    assert main(argv) == 2
    assert snapshot(run) == before
    # a checkpoint of another architecture: the keys that do not fit are listed
    train(
        recipe("lenet5_modern", "mnist", data_dir=str(DATA), out=str(tmp_path / "other"), max_steps=1),
        log=lambda line: None,
    )
    (tmp_path / "other" / "checkpoint.safetensors").replace(ckpt)
    before = snapshot(run)
    with pytest.raises(
        WeightsError,
        match=r"checkpoint.safetensors: state dict does not fit mlp: missing keys: "
        r".*unexpected keys: conv1.bias",
    ):
        train(recipe("mlp", "mnist", data_dir=str(DATA), out=str(run), resume=True), log=lambda line: None)
    assert snapshot(run) == before
    with pytest.raises(WeightsError, match="shape mismatches: fc.weight: expected"):
        from cnnlab.weights import load_into

        model = cnnlab.create_model("mlp")
        load_into(model, {**model.state_dict(), "fc.weight": torch.zeros(3, 3)}, "mlp", "x.pth")


def test_downloads_are_checked_and_never_left_half_written(tmp_path, monkeypatch):
    from cnnlab.data import download
    from cnnlab.errors import DatasetError

    monkeypatch.setenv("CNNLAB_OFFLINE", "0")
    source = tmp_path / "source.bin"
    source.write_bytes(b"official content")
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(DatasetError, match="checksum mismatch .* nothing was saved"):
        download(source.as_uri(), dest, "0" * 32)
    assert not dest.exists() and not list(dest.parent.iterdir())
    with pytest.raises(DatasetError, match="cannot download"):
        download((tmp_path / "missing.bin").as_uri(), dest, "0" * 32)
    assert not list(dest.parent.iterdir())
    download(source.as_uri(), dest, hashlib.md5(b"official content").hexdigest())
    assert dest.read_bytes() == b"official content" and list(dest.parent.iterdir()) == [dest]


def test_checkpoints_every_few_minutes_inside_an_epoch(tmp_path, monkeypatch):
    import cnnlab.train.folder as T

    saved, real = [], T.atomic_save

    def spy(tensors, path, meta):
        saved.append((path.name, meta.get("step_in_epoch")))
        real(tensors, path, meta)

    monkeypatch.setattr(T, "atomic_save", spy)
    cfg = recipe(
        "mlp", "mnist", data_dir=str(DATA), out=str(tmp_path / "run"), max_steps=5, checkpoint_minutes=1e-9
    )  # due after every step
    train(cfg, log=lambda line: None)
    inside = [step for name, step in saved if name == "checkpoint.safetensors" and step]
    assert inside == [1, 2, 3, 4]  # the fifth step ends the run, with its own checkpoint


def test_an_unreadable_image_to_predict_is_one_clear_error(tmp_path):
    from cnnlab.errors import DatasetError
    from cnnlab.evaluation.runs import image_input

    bad = tmp_path / "digit.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(DatasetError, match="digit.png: not a readable image"):
        image_input(bad, {"input_size": [1, 28, 28], "mean": [0.1307], "std": [0.3081]})


def full_disk_on(call: int, real_save):
    """A stand-in for safetensors' save_file whose `call`-th write fills the disk: it writes part
    of the file, then fails the way safetensors reports ENOSPC."""
    from safetensors import SafetensorError

    calls = []

    def save_file(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == call:
            Path(path).write_bytes(b"\0" * 1000)
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        real_save(tensors, path, metadata=metadata)

    return save_file


@pytest.mark.slow
def test_a_full_disk_mid_run_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path, reference, monkeypatch, capsys):
    import cnnlab.checkpoint as C
    from cnnlab.cli import main

    run, real = tmp_path / "run", C.save_file
    monkeypatch.setattr(C, "save_file", full_disk_on(5, real))  # checkpoints at steps 20, 40, 60, 80, then 100
    assert main(["train", "mlp", "--dataset", "mnist", "--data-dir", str(DATA), "--out", str(run), *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"cnnlab: error: {run / 'checkpoint.safetensors'}: not written, no space left on the device; "
        "training stopped; the checkpoint of epoch 1, step 80 is kept: make room, then resume with: "
        f"cnnlab train mlp --out {run} --resume"
    )
    assert not any("Traceback" in line for line in err)
    assert not list(run.glob("tmp*"))  # the partial file is gone
    assert steps_saved(run) == 80  # the checkpoint before it is whole
    monkeypatch.setattr(C, "save_file", real)  # room made
    assert main(["train", "mlp", "--out", str(run), "--resume"]) == 0
    final = cnnlab.load_model(run).state_dict()
    assert all(torch.equal(final[k], v) for k, v in reference[0].items())  # as if nothing had happened


def test_a_full_disk_while_caching_a_decoded_dataset_only_costs_the_cache(tmp_path, monkeypatch, capsys):
    import errno

    import cnnlab.data.datasets as D

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = tmp_path / "images.bin"
    source.write_bytes(b"decoded once")
    split = D.Split(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4), ("a", "b", "c", "d"))
    real = Path.write_bytes

    def filling(self, data):  # the disk fills up after a part of the file
        real(self, bytes(data)[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", filling)
    got = D._from_disk_cache(source, "toy-test", lambda: split)
    assert got is split  # the data itself is fine
    assert capsys.readouterr().err.strip() == (
        f"cnnlab: note: the decoded toy-test was not cached in {D.cache_dir()} (no space left on the device); "
        "it will be decoded again next time"
    )
    assert list(D.cache_dir().iterdir()) == []  # no partial file left to fill the disk further
    monkeypatch.setattr(Path, "write_bytes", real)  # with room, the next load caches it
    D._from_disk_cache(source, "toy-test", lambda: split)
    assert len(list(D.cache_dir().glob("toy-test-*.pt"))) == 1


@pytest.mark.parametrize(
    "code, words",
    [
        (28, "no space left on the device; free some space or write elsewhere"),
        (30, "read-only file system; write elsewhere"),
    ],
)
def test_a_file_that_cannot_be_written_is_one_line_and_changes_nothing(tmp_path, code, words):
    from cnnlab.errors import WriteError
    from cnnlab.files import atomic_file

    target = tmp_path / "report.json"
    target.write_text("the old report")
    with pytest.raises(WriteError) as e:
        with atomic_file(target) as tmp:
            Path(tmp).write_text("half of the new")
            raise OSError(code, os.strerror(code))
    assert str(e.value).startswith(f"{target}: not written, {words}")
    assert isinstance(e.value, OSError) and isinstance(e.value, CnnlabError)
    assert target.read_text() == "the old report" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_the_command_line_names_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    import errno

    import cnnlab.cli.export as X  # the command's module, which calls cnnlab.export.export
    from cnnlab.cli import main

    out = tmp_path / "m.onnx"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))

    monkeypatch.setattr(X, "export", full)
    assert main(["export", "lenet5", "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"cnnlab: error: {out}: no space left on device; free some space or write elsewhere"
    )


def test_a_download_onto_a_full_disk_says_so(tmp_path, monkeypatch):
    import errno

    import cnnlab.data.datasets as D
    from cnnlab.errors import DatasetError

    monkeypatch.setenv("CNNLAB_OFFLINE", "0")
    source = tmp_path / "source.bin"
    source.write_bytes(b"official content")

    def full(src, dst):
        dst.write(b"offi")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(D.shutil, "copyfileobj", full)
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(
        DatasetError,
        match=r"cannot save .*source.bin in .*data: no space left on the device; "
        r"free some space or choose another data folder",
    ):
        D.download(source.as_uri(), dest, "0" * 32)
    assert not list(dest.parent.iterdir())


def test_a_torchscript_export_onto_a_full_disk_is_one_line(tmp_path, monkeypatch):
    """torch.jit.save into a file on a full disk aborts the whole process (an error thrown in a
    destructor), so the file is serialised in memory and written by cnnlab."""
    import errno

    from cnnlab.errors import WriteError
    from cnnlab.export import export

    real = Path.write_bytes

    def filling(self, data):
        real(self, bytes(data)[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", filling)
    out = tmp_path / "lenet5.pt"
    with pytest.raises(WriteError, match=f"^{out}: not written, no space left on the device"):
        export("lenet5", "torchscript", out)
    assert list(tmp_path.iterdir()) == []
