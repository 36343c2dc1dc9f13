"""A run folder, as `cnnlab train --out RUN` leaves it: config.json (every setting, resolved),
metrics.jsonl, model.safetensors, best.safetensors, checkpoint.safetensors and, with --whiten,
whitening.safetensors. Here it is read back; `cnnlab.train` writes it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import Tensor

from .checkpoint import load, read_metadata
from .errors import CnnlabError, WeightsError

RUN_FILES = ("config.json", "checkpoint.safetensors", "model.safetensors", "metrics.jsonl")


def read_config(path: str | os.PathLike) -> dict:
    """The resolved configuration of a run directory (its config.json) or of one of its
    .safetensors files (their metadata)."""
    path = Path(path)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise CnnlabError(f"{path}: not a run directory (no config.json)")
        try:
            saved = json.loads(config.read_text())
        except (OSError, ValueError) as e:
            raise CnnlabError(f"{config}: not readable ({type(e).__name__}: {e})") from None
        if not isinstance(saved, dict) or "model" not in saved:
            raise CnnlabError(f"{config}: not a cnnlab run configuration (no model)")
        return saved
    _, meta = load(path)
    if "config" not in meta:
        raise WeightsError(f"{path}: no cnnlab configuration in its metadata")
    return meta["config"]


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


def prepare_folder(out: str | os.PathLike) -> bool:
    """Create the run folder `out` and make sure it can be written; True if it was created here.
    A folder that cannot be written is one CnnlabError naming it."""
    out = Path(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"  # one per torchrun process
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise CnnlabError(f"output directory {out} is not writable ({e.strerror}); choose another --out") from None
    return created


def remove_if_empty(out: str | os.PathLike) -> None:
    """Remove a run folder that a refused run created and left empty."""
    try:
        Path(out).rmdir()  # only if empty
    except OSError:
        pass


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
