"""A run folder, as `cnnlab train --out RUN` leaves it: config.json (every setting, resolved),
metrics.jsonl, model.safetensors, best.safetensors, checkpoint.safetensors and, with --whiten,
whitening.safetensors. Here it is read back, and kept safe while `cnnlab.train` writes it: one
writer at a time (`RunLock`), a new run beside it until it can take its place (`staging_folder`,
`publish`)."""

from __future__ import annotations

import ctypes
import fcntl
import glob
import json
import math
import os
import shutil
import socket
import time
from pathlib import Path

from torch import Tensor

from .checkpoint import load, read_metadata
from .errors import CnnlabError, WeightsError, WriteError
from .files import failed_write

RUN_FILES = ("config.json", "checkpoint.safetensors", "model.safetensors", "metrics.jsonl")


def read_config(path: str | os.PathLike, need=None) -> dict:
    """The resolved configuration of a run directory (its config.json) or of one of its
    .safetensors files (their metadata), checked (`check_config`) to hold the keys in `need`
    (default: all a run has) and right values wherever it has them."""
    path = Path(path)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise CnnlabError(f"{path}: not a run directory (no config.json)")
        try:
            saved = json.loads(config.read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise CnnlabError(f"{config}: not readable ({type(e).__name__}: {e})") from None
        return check_config(saved, config, need)
    _, meta = load(path)
    if "config" not in meta:
        raise WeightsError(f"{path}: no cnnlab configuration in its metadata")
    return check_config(meta["config"], path, need)


# what every run's configuration holds, and of which type, besides its settings
REQUIRED = {"model": str, "dataset": str, "input_size": list, "num_classes": int, "mean": list, "std": list}


def check_config(cfg, where: str | os.PathLike, need=None) -> dict:
    """`cfg` if it is a cnnlab run configuration with the keys in `need` (default: all of
    REQUIRED) and right values wherever it has them; else a CnnlabError naming `where` and what is
    wrong (an edited or damaged config.json would otherwise fail deep inside, or evaluate to NaN)."""
    if not isinstance(cfg, dict):
        raise CnnlabError(f"{where}: not a cnnlab run configuration (a table of settings)")
    for key in ("model", *(REQUIRED if need is None else need)):
        if key not in cfg:
            raise CnnlabError(
                f"{where}: no {key}; it is not a whole cnnlab run configuration (train the run "
                "again, or restore its config.json)"
            )
    for key, kind in REQUIRED.items():
        if key in cfg and (not isinstance(cfg[key], kind) or isinstance(cfg[key], bool)):
            raise CnnlabError(f"{where}: {key} = {cfg[key]!r} should be a {kind.__name__}")
    size = cfg.get("input_size", [1])
    if not size or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise CnnlabError(f"{where}: input_size {size} should be positive whole numbers")
    if "mean" in cfg or "std" in cfg:
        _check_normalization(cfg.get("mean", []), cfg.get("std", []), where)
    return cfg


def _check_normalization(mean: list, std: list, where) -> None:
    values = mean + std
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise CnnlabError(f"{where}: mean {mean} and std {std} should be finite numbers")
    if len(mean) != len(std) or not all(v > 0 for v in std):
        raise CnnlabError(f"{where}: std must be positive, one per channel like mean; got mean {mean}, std {std}")


def is_run(path: str | os.PathLike) -> bool:
    """A run directory, or a .safetensors file written by `cnnlab train` (its metadata holds the
    run's config; only the header is read)."""
    path = Path(path)
    if path.is_dir():
        return (path / "config.json").is_file()
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    return "config" in (read_metadata(path) or {})


def describe(out: str | os.PathLike) -> tuple[list[str], str] | None:
    """The run files in folder `out` and what run they are ("lenet5 on mnist", or "" where its
    config.json does not say); None when it holds none."""
    out = Path(out)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return None
    try:
        config = json.loads((out / "config.json").read_text())
        return found, f"{config['model']} on {config['dataset']}"
    except (OSError, ValueError, KeyError, TypeError):
        return found, ""


def prepare_folder(out: str | os.PathLike) -> None:
    """Make sure a run can be written to `out`: its parent folders exist and take a file. A place
    that cannot be written is one WriteError naming it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WriteError(f"{out}: a file is in the way of the run directory; choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.write-test-{os.getpid()}"  # one per torchrun process
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise WriteError(f"output directory {out} is not writable ({e.strerror}); choose another --out") from None


class RunLock:
    """The right to write run folder `out`, for one process at a time: an exclusive lock on a file
    beside it (.NAME.lock), which the system releases when the process ends, however it ends. The
    file says who holds it, and goes when its holder is done."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.file = self.out.parent / f".{self.out.name}.lock"
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        while self.fd is None:
            try:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise failed_write(self.out, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise CnnlabError(
                    f"{self.out} is being written by another cnnlab process ({holder}); wait for it "
                    "to end, or choose another --out"
                ) from None
            if _same_file(fd, self.file):  # not a file its last holder removed between our open and our lock
                self.fd = fd
            else:
                os.close(fd)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%H:%M:%S')}".encode())
        return self

    def __exit__(self, *exc) -> None:
        self.file.unlink(missing_ok=True)  # while still held: a waiting process then locks a new file
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def staging_folder(out: str | os.PathLike) -> Path:
    """Where a new run is written until it has its first checkpoint: a hidden folder beside `out`.
    A run that fails before then leaves nothing in the way, and one that replaces another
    (--overwrite) leaves the old one whole until then."""
    out = Path(out)
    return out.parent / f".{out.name}.new-{os.getpid()}"


def publish(staging: Path, out: Path) -> None:
    """Put the run in `staging` in place of `out`, in one step where the system can exchange two
    folders (Linux), else in two renames; an old run in `out` is removed after."""
    if out.exists() and _exchange(staging, out):
        shutil.rmtree(staging)  # now the old run
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def clear_stale(out: str | os.PathLike) -> None:
    """What dead processes left beside `out` (call with its RunLock held): partial new runs go; an
    old run whose replacement never arrived is put back."""
    out = Path(out)
    for path in out.parent.glob(f".{glob.escape(out.name)}.new-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in out.parent.glob(f".{glob.escape(out.name)}.old-*"):
        if out.exists():
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.rename(path, out)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically with renameat2(RENAME_EXCHANGE); False where there is none."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def whitening(path: str | os.PathLike, cfg: dict, device) -> tuple[Tensor, Tensor] | None:
    """The ZCA transform a run was trained with (whitening.safetensors beside its weights)."""
    if not cfg.get("whiten"):
        return None
    path = Path(path)
    tensors, _ = load((path if path.is_dir() else path.parent) / "whitening.safetensors")
    return tensors["mean"].to(device), tensors["matrix"].to(device)


def weights_file(path: str | os.PathLike, which: str = "model") -> Path:
    """A run's weights file: RUN/`which`.safetensors for a run directory, the path itself for a file."""
    path = Path(path)
    return path / f"{which}.safetensors" if path.is_dir() else path
