"""Weights and resumable training state in safetensors files, written atomically.

Nothing here unpickles: tensors live in the safetensors body, everything else (configuration,
optimiser hyper-parameters, scheduler state, epoch) in its JSON metadata under "cnnlab".
Every file cnnlab writes goes through `atomic_file` (or `save_figure`, `append_text`): a full
disk or a forbidden folder is a one-line WriteError, and never leaves half a file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .errors import WeightsError, WriteError


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished temporary file over `path`, with the permissions a newly created file
    would have (temporary files are private, 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


FULL = 1 << 20  # less free space than this after a failed write: the disk was full


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < FULL
    except OSError:
        return False


def write_problem(error: BaseException, full: bool = False) -> str | None:
    """Why a write failed, in words, when the cause is the place and not the data: a full disk, a
    read-only or forbidden folder; None for anything else. Libraries such as torch.save report a
    full disk in their own words, so a writer that knows the disk filled up says so (`full`)."""
    code = getattr(error, "errno", None)
    if code is None and f"(os error {errno.ENOSPC})" in str(error):  # safetensors: an io::Error in words
        code = errno.ENOSPC
    if code in (errno.ENOSPC, errno.EDQUOT) or full:
        return "no space left on the device"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return os.strerror(code).lower()
    if code == errno.EISDIR:
        return "a folder of that name is in the way"
    if code == errno.ENOTDIR:
        return "a file is in the way of its folder"
    return None


def failed_write(path: Path, error: OSError) -> WriteError:
    """The WriteError for an OSError that a plain write into `path` raised."""
    return write_error(path, write_problem(error) or error.strerror.lower())


def write_error(path: Path, problem: str, advice: str | None = None) -> WriteError:
    """The one-line error for a file not written; `.path` and `.problem` say which and why."""
    advice = advice or ("free some space or write elsewhere (nothing already there was changed)"
                        if "space" in problem else "write elsewhere")
    error = WriteError(f"{path}: not written, {problem}; {advice}")
    error.path, error.problem = Path(path), problem
    return error


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ".part"):
    """A temporary file name beside `path` to write to: when the block ends, the file is fsynced
    and renamed over `path` (`publish`); if it raises, the temporary file is removed. A kill at
    any moment leaves either the old file or the new one, never half of one. A full disk or a
    folder that cannot be written is a WriteError naming `path`."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="tmp", suffix=suffix)
    except OSError as e:
        raise failed_write(path, e) from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        publish(tmp, path)
    except Exception as e:
        full = _nearly_full(path.parent)  # measured while the partial file still takes its space
        Path(tmp).unlink(missing_ok=True)
        problem = write_problem(e, full)
        if problem and not isinstance(e, WriteError):
            raise write_error(path, problem) from None
        raise
    except BaseException:  # Ctrl-C, SIGTERM: nothing half-written stays behind
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Write a matplotlib figure atomically (PNG unless the name says otherwise), then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_file(path, path.suffix or ".png") as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def append_text(path: Path, text: str) -> None:
    """Append to a log file (a line per epoch); a full disk is a WriteError naming the file."""
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as e:
        raise failed_write(path, e) from None


def atomic_save(tensors: dict[str, Tensor], path: Path, metadata: dict) -> None:
    """Write a safetensors file atomically (`atomic_file`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_file(path) as tmp:
        save_file(tensors, tmp, metadata={"cnnlab": json.dumps(metadata)})


def load(path: Path) -> tuple[dict[str, Tensor], dict]:
    """Tensors and cnnlab metadata of a safetensors file; WeightsError names the file and problem."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        with safe_open(path, "pt") as f:  # one read gives the tensors and the metadata
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = (f.metadata() or {}).get("cnnlab")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        return tensors, json.loads(meta) if meta else {}
    except json.JSONDecodeError:
        raise WeightsError(f"{path}: its cnnlab metadata is not valid JSON") from None


def pack_training_state(model, optimizer, scheduler, epoch: int, generator: torch.Generator,
                        extra: dict) -> tuple[dict[str, Tensor], dict]:
    """Flatten model, optimiser, scheduler and RNG state into tensors + JSON-able metadata."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    scalars = {}
    for idx, state in opt_state["state"].items():
        for key, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.generator"] = generator.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {**extra, "epoch": epoch, "param_groups": opt_state["param_groups"], "optim_scalars": scalars,
            "scheduler": scheduler.state_dict()}
    return tensors, meta


def unpack_training_state(tensors: dict[str, Tensor], meta: dict, model, optimizer, scheduler,
                          generator: torch.Generator) -> int:
    """Restore what pack_training_state saved; returns the epoch the checkpoint was taken after."""
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    for k, v in meta["optim_scalars"].items():
        idx, key = k.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.generator"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return int(meta["epoch"])
