"""Weights and resumable training state in safetensors files, written atomically.

Nothing here unpickles: tensors live in the safetensors body, everything else (configuration,
optimiser hyper-parameters, scheduler state, epoch) in its JSON metadata under "cnnlab".
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .errors import WeightsError
from .files import atomic_file

MODEL_PREFIX = "model."  # a training checkpoint keeps the model's tensors under this prefix


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


def laid_out_as(value: Tensor, param: Tensor) -> Tensor:
    """An optimiser's state tensor (a momentum buffer, Adam's moments) in the memory layout of its
    parameter: the fused optimisers walk parameter, gradient and state in memory order, so a
    buffer saved contiguous would meet a channels_last parameter element for the wrong element."""
    if value.shape != param.shape:  # a step count
        return value.clone()
    return torch.empty_like(param).copy_(value)


def read_metadata(path: Path) -> dict | None:
    """The cnnlab metadata of a safetensors file from its header alone (None if it is not one)."""
    try:
        with safe_open(path, "pt") as f:
            meta = (f.metadata() or {}).get("cnnlab")
    except (SafetensorError, OSError, ValueError):
        return None
    try:
        return json.loads(meta) if meta else {}
    except json.JSONDecodeError:
        return None


def model_state(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The model's own tensors: a training checkpoint's `model.*` part, or all of a weights file."""
    if any(k.startswith(MODEL_PREFIX) for k in tensors):
        return {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    return tensors


def pack_training_state(
    model, optimizer, scheduler, epoch: int, generator: torch.Generator, extra: dict
) -> tuple[dict[str, Tensor], dict]:
    """Flatten model, optimiser, scheduler and RNG state into tensors + JSON-able metadata."""
    tensors = {f"{MODEL_PREFIX}{k}": v for k, v in model.state_dict().items()}
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
    meta = {
        **extra,
        "epoch": epoch,
        "param_groups": opt_state["param_groups"],
        "optim_scalars": scalars,
        "scheduler": scheduler.state_dict(),
    }
    return tensors, meta


def unpack_training_state(
    tensors: dict[str, Tensor], meta: dict, model, optimizer, scheduler, generator: torch.Generator
) -> int:
    """Restore what pack_training_state saved; returns the epoch the checkpoint was taken after."""
    model.load_state_dict(model_state(tensors))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = laid_out_as(v, params[int(idx)])
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
