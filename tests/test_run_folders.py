"""Run folders are never lost: one process writes a folder at a time, a new run takes its place
only with its first checkpoint, and a failed run leaves nothing in the way."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, tiny_mnist_run

from cnnlab.cli import main
from cnnlab.errors import CnnlabError, TrainingDiverged, WriteError
from cnnlab.runs import RunLock, clear_stale, publish, staging_folder
from cnnlab.train import recipe, train
from cnnlab.train.folder import RunFolder

TINY = dict(data_dir=str(DATA), epochs=1, train_per_class=5, test_per_class=2)


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_second_process_is_refused_naming_the_holder_and_the_lock_dies_with_its_process(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from cnnlab.runs import RunLock; import time\nwith RunLock({str(out)!r}):\n"
            "    print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    args = tiny_mnist_run(out)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{out} is being written by another cnnlab process (pid {holder.pid} on " in err and err.count("\n") == 1
    assert not out.exists()
    holder.kill()  # killed, not shut down: the system releases its lock
    holder.wait()
    assert main(args) == 0 and (out / "checkpoint.safetensors").is_file()
    assert not list(tmp_path.glob(".run.*"))  # no lock, staging or old folder left beside it


def test_a_run_that_diverges_before_its_first_checkpoint_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="; nothing was saved; try a smaller --lr"):
        train(recipe("mlp", "mnist", lr=1e30, max_steps=3, out=str(out), **TINY), log=lambda line: None)
    assert not out.exists() and not list(tmp_path.iterdir())  # the same --out is free again
    train(recipe("mlp", "mnist", out=str(out), **TINY), log=lambda line: None)
    assert (out / "model.safetensors").is_file()


def fail_writing_config(monkeypatch):
    import cnnlab.train.folder as folder

    def full(path, data):
        raise WriteError(f"{path}: not written, no space left on the device")

    monkeypatch.setattr(folder, "write_json", full)


# how a new run given --overwrite fails: each before its first checkpoint
FAILURES = {
    "reading its data": (dict(classes=("3", "x")), None, "no class 'x'"),
    "writing its first file": ({}, fail_writing_config, "no space left on the device"),
    "diverging at its first steps": (dict(lr=1e30, max_steps=3), None, "nothing was saved"),
}


@pytest.mark.parametrize("how", FAILURES)
def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(tmp_path, monkeypatch, how):
    out = tmp_path / "run"
    train(recipe("mlp", "mnist", out=str(out), **TINY), log=lambda line: None)
    old = snapshot(out)
    settings, patch, says = FAILURES[how]
    with monkeypatch.context() as m:
        if patch:
            patch(m)
        with pytest.raises(CnnlabError, match=says):
            new = recipe("lenet5_modern", "mnist", out=str(out), overwrite=True, **{**TINY, **settings})
            train(new, log=lambda line: None)
    assert snapshot(out) == old and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert main(["train", "mlp", "--out", str(out), "--resume", "--data-dir", str(DATA)]) == 0

    seen = []
    real = RunFolder.save_checkpoint

    def look(self, *args, **kwargs):  # at the new run's first checkpoint the old run is still all there
        seen.append(snapshot(out) == old and self.path != out)
        real(self, *args, **kwargs)

    old = snapshot(out)
    monkeypatch.setattr(RunFolder, "save_checkpoint", look)
    train(recipe("lenet5_modern", "mnist", out=str(out), overwrite=True, **TINY), log=lambda line: None)
    assert seen == [True]  # replaced with the first checkpoint, not before
    assert snapshot(out) != old and '"model": "lenet5_modern"' in (out / "config.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_folder_of_other_files_is_not_a_run_to_replace(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"the user's")
    with pytest.raises(CnnlabError, match="holds files that are not a cnnlab run; choose a new or empty folder"):
        train(recipe("mlp", "mnist", out=str(out), overwrite=True, **TINY), log=lambda line: None)
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]


def test_publishing_swaps_and_stale_leftovers_are_cleared(tmp_path):
    out, new = tmp_path / "run", staging_folder(tmp_path / "run")
    out.mkdir()
    (out / "a").write_text("old")
    new.mkdir()
    (new / "a").write_text("new")
    publish(new, out)
    assert (out / "a").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # a process killed between the two renames of a system without an atomic exchange
    (tmp_path / ".run.new-1").mkdir()
    out.rename(tmp_path / ".run.old-2")
    with RunLock(out):
        clear_stale(out)
    assert (out / "a").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_resume_hint_quotes_paths_with_spaces(tmp_path):
    cfg = recipe("mlp", "mnist", out=str(tmp_path / "my run"), **TINY)
    assert RunFolder(cfg, writes=True).resume_command() == f"cnnlab train mlp --out '{tmp_path}/my run' --resume"


def test_an_unreadable_class_folder_is_named_not_dropped(tmp_path, monkeypatch):
    import os

    from cnnlab.data import ImageFolder
    from cnnlab.errors import DatasetError

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(20):
            (tmp_path / cls / f"{i}.png").write_bytes(b"x")
    real = os.scandir

    def forbidden(path="."):  # what a folder without read permission does (the tests run as root)
        if str(path).endswith("dog"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", forbidden)
    with pytest.raises(DatasetError, match=r"dog: cannot be read \(Permission denied\); its images would be left out"):
        ImageFolder(tmp_path, True)


def test_a_nan_test_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import cnnlab.train.loop as loop

    out = tmp_path / "run"
    real, calls = loop.evaluate, []

    def poisoned(model, data, **kwargs):  # the second epoch's test loss is NaN
        calls.append(1)
        result = real(model, data, **kwargs)
        return {**result, "loss": float("nan")} if len(calls) == 2 else result

    monkeypatch.setattr(loop, "evaluate", poisoned)
    with pytest.raises(
        TrainingDiverged, match=f"the test loss became nan after epoch 2; the checkpoint after epoch 1 is kept in {out}"
    ):
        train(recipe("mlp", "mnist", out=str(out), **{**TINY, "epochs": 2}), log=lambda line: None)
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and "NaN" not in rows[0]  # only the good epoch, as JSON
    assert (out / "checkpoint.safetensors").is_file()
