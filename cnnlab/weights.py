"""Weights from torchvision: name mapping and state-dict conversion.

Our modules carry torchvision's names wherever torchvision has the same network, so its
state dicts convert by identity; the conversion still checks every key and shape, so a file
for another network fails with a list of what does not fit instead of a silent partial load.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import load
from .errors import WeightsError
from .registry import create_model

# cnnlab name -> (torchvision builder, keyword arguments our builder needs to match it)
TORCHVISION_MODELS = {
    "alexnet_owt": ("alexnet", {}),
    **{f"vgg{d}": (f"vgg{d}", {}) for d in (11, 13, 16, 19)},
    **{f"vgg{d}_bn": (f"vgg{d}_bn", {}) for d in (11, 13, 16, 19)},
    "googlenet_bn": ("googlenet", {}),
    **{f"resnet{d}": (f"resnet{d}", {"variant": "v1.5"}) for d in (18, 34, 50, 101, 152)},
}


def convert_torchvision(name: str, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Turn a torchvision state dict for `name`'s torchvision counterpart into ours.

    Raises WeightsError listing missing and unexpected keys and shape mismatches.
    """
    if name not in TORCHVISION_MODELS:
        raise WeightsError(f"{name} has no torchvision counterpart; those that do: "
                           f"{', '.join(sorted(TORCHVISION_MODELS))}")
    _, kwargs = TORCHVISION_MODELS[name]
    if name == "googlenet_bn":  # published files keep the auxiliary classifiers; user ones may not
        kwargs = {**kwargs, "aux_logits": any(k.startswith("aux1.") for k in state_dict)}
    num_classes = _num_classes(state_dict)
    with torch.device("meta"):
        expected = create_model(name, num_classes=num_classes, **kwargs).state_dict()
    converted = dict(state_dict)  # identity: our module names are torchvision's
    check_state_dict(name, expected, converted)
    return converted


def _num_classes(state_dict: Mapping[str, Tensor]) -> int | None:
    for key in ("fc.weight", "classifier.6.weight"):
        if key in state_dict:
            return state_dict[key].shape[0]
    return None


def check_state_dict(name: str, expected: Mapping[str, Tensor], given: Mapping[str, Tensor],
                     source: str | os.PathLike | None = None) -> None:
    """Raise WeightsError unless `given` has exactly the keys and shapes of `expected`; the
    message lists missing and unexpected keys and shape mismatches (and names `source`)."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [f"{k}: expected {tuple(expected[k].shape)}, got {tuple(given[k].shape)}"
              for k in expected if k in given and expected[k].shape != given[k].shape]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        where = f"{source}: " if source is not None else ""
        raise WeightsError(f"{where}state dict does not fit {name}: " + "; ".join(problems))


def load_into(model: torch.nn.Module, state_dict: Mapping[str, Tensor], name: str,
              source: str | os.PathLike | None = None) -> None:
    """Load `state_dict` into `model` after checking every key and shape (WeightsError otherwise)."""
    check_state_dict(name, model.state_dict(), state_dict, source)
    model.load_state_dict(state_dict)


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a weights file: safetensors, or a PyTorch .pth/.pt file read with
    torch.load(weights_only=True), which refuses anything but tensors and plain containers, so
    a file crafted to run code when unpickled is rejected without running it. A checkpoint that
    wraps its weights ({"state_dict": ...} or {"model": ...}) is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        return load(path)[0]
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: refused: it holds objects other than tensors, which could run code when "
                           f"unpickled ({reason[:200]}); only plain state dicts are loaded") from None
    except Exception as e:  # noqa: BLE001  (truncated zips, random bytes: many exception types)
        raise WeightsError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}: "
                           f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else 'empty'})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, Tensor)
                                                       for k, v in obj.items()):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    return dict(obj)
