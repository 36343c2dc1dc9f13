"""Pretrained weights: torchvision's ImageNet files, local files and cnnlab runs.

Our modules carry torchvision's names wherever torchvision has the same network, so its
state dicts convert by identity; the conversion still checks every key and shape, so a file
for another network fails with a list of what does not fit instead of a silent partial load.

`cnnlab.create_model(name, weights="imagenet")` finds torchvision's file for `name` in the cache (the
one torchvision itself uses, `$TORCH_HOME/hub/checkpoints`, or `$CNNLAB_WEIGHTS`), or downloads
it from its official URL; either way the file's sha256 must start with the hash in its name
(torch.hub's convention). Nothing is downloaded when the file is there, or with CNNLAB_OFFLINE=1.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import load, model_state
from .errors import WeightsError
from .files import write_problem
from .registry import meta_model

# cnnlab name -> (torchvision builder, keyword arguments our builder needs to match it)
TORCHVISION_MODELS = {
    "alexnet_owt": ("alexnet", {}),
    **{f"vgg{d}": (f"vgg{d}", {}) for d in (11, 13, 16, 19)},
    **{f"vgg{d}_bn": (f"vgg{d}_bn", {}) for d in (11, 13, 16, 19)},
    "googlenet_bn": ("googlenet", {}),
    **{f"resnet{d}": (f"resnet{d}", {"variant": "v1.5"}) for d in (18, 34, 50, 101, 152)},
}

# Building a model for torchvision's published weights needs a little more than its shape:
# GoogLeNet's were trained on [-1, 1] input (transform_input), ResNets are v1.5 (stride in the 3x3)
PRETRAINED_KWARGS = {"googlenet_bn": {"transform_input": True}}

LICENCE = (
    "torchvision's ImageNet weights (BSD-3-Clause code); they were trained on ImageNet, whose terms "
    "allow non-commercial research and educational use"
)


@dataclass(frozen=True)
class Pretrained:
    """Where a model's published ImageNet weights come from and what they expect."""

    model: str
    url: str
    top1: float  # published ImageNet-1k validation accuracy, single 224 crop, in %
    top5: float
    resize: int  # preprocessing: shorter side to `resize`, centre crop `crop`, RGB 0-1, then mean/std
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    licence: str = LICENCE
    build: dict = field(default_factory=dict)  # keyword arguments of the model these weights fit

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        """torch.hub's convention: the file name ends in the first hex digits of its sha256."""
        return self.filename.rsplit(".", 1)[0].rsplit("-", 1)[-1]

    @property
    def categories(self) -> list[str]:
        """The 1000 ImageNet class names, in the weights' output order."""
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        return list(_IMAGENET_CATEGORIES)


def pretrained(name: str) -> Pretrained:
    """The published ImageNet weights of a zoo model (those torchvision publishes: the first
    IMAGENET1K_V1 weights of the counterpart)."""
    if name not in TORCHVISION_MODELS:
        raise WeightsError(
            f"no published ImageNet weights for {name}; models with them: "
            f"{', '.join(sorted(TORCHVISION_MODELS))} (or give a weights file: --weights PATH)"
        )
    import torchvision.models as tvm

    tv_name, kwargs = TORCHVISION_MODELS[name]
    entry = tvm.get_model_weights(tv_name)["IMAGENET1K_V1"]
    metrics, tf = entry.meta["_metrics"]["ImageNet-1K"], entry.transforms()
    return Pretrained(
        name,
        entry.url,
        metrics["acc@1"],
        metrics["acc@5"],
        tf.resize_size[0],
        tf.crop_size[0],
        tuple(tf.mean),
        tuple(tf.std),
        build={**kwargs, **PRETRAINED_KWARGS.get(name, {})},
    )


def weights_dir() -> Path:
    """Where downloaded weights are kept: $CNNLAB_WEIGHTS, else torchvision's own cache."""
    if os.environ.get("CNNLAB_WEIGHTS"):
        return Path(os.environ["CNNLAB_WEIGHTS"])
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch(info: Pretrained, directory: str | os.PathLike | None = None) -> Path:
    """The local file of `info`'s weights: from the cache if there, else downloaded (to a
    temporary file, checked, then renamed). Either way its sha256 must match the name's hash."""
    directory = Path(directory) if directory is not None else weights_dir()
    path = directory / info.filename
    if not path.is_file():
        if os.environ.get("CNNLAB_OFFLINE", "") not in ("", "0"):
            raise WeightsError(
                f"{info.model}: {info.filename} is not in {directory} and downloads are off "
                f"(CNNLAB_OFFLINE); fetch {info.url} on a machine online and put it there, "
                "or give that file: --weights PATH"
            )
        directory.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(info.url, str(path), hash_prefix=info.hash_prefix, progress=True)
        except RuntimeError as e:  # torch.hub: "invalid hash value" (the temporary file is removed)
            raise WeightsError(f"{info.url}: {e}; nothing was saved") from None
        except OSError as e:
            if problem := write_problem(e):
                raise WeightsError(
                    f"{info.model}: cannot save {info.filename} in {directory}: {problem}; free some "
                    "space or set CNNLAB_WEIGHTS to another folder"
                ) from None
            raise WeightsError(
                f"{info.model}: cannot download {info.url} ({e}); give a local copy: --weights PATH"
            ) from None
        return path
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(info.hash_prefix):
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}... does not start with {info.hash_prefix} (from its name); "
            "the file is damaged or not the published one: delete it to download it again"
        )
    return path


def load_weights(model: torch.nn.Module, name: str, source: str | os.PathLike) -> None:
    """Load a weights file (ours or torchvision's, safetensors or .pth) into `model`."""
    load_into(model, model_state(read_state_dict(source)), name, source)


def num_classes_in(name: str, state: Mapping[str, Tensor], **kwargs) -> int | None:
    """The number of classes a state dict of `name` (built with `kwargs`) scores: the outputs of
    its classifier layer, found by the layer's name (keys come in any order: safetensors sorts
    them); None for a model without a classifier or a state dict without that layer."""
    model = meta_model(name, **kwargs)
    if not hasattr(model, "classifier_key"):
        return None
    tensor = state.get(model.classifier_key)
    return tensor.shape[0] if tensor is not None and tensor.ndim >= 2 else None


def convert_torchvision(name: str, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Turn a torchvision state dict for `name`'s torchvision counterpart into ours.

    Raises WeightsError listing missing and unexpected keys and shape mismatches.
    """
    if name not in TORCHVISION_MODELS:
        raise WeightsError(
            f"{name} has no torchvision counterpart; those that do: {', '.join(sorted(TORCHVISION_MODELS))}"
        )
    _, kwargs = TORCHVISION_MODELS[name]
    if name == "googlenet_bn":  # published files keep the auxiliary classifiers; user ones may not
        kwargs = {**kwargs, "aux_logits": any(k.startswith("aux1.") for k in state_dict)}
    num_classes = _num_classes(state_dict)
    expected = meta_model(name, num_classes, **kwargs).state_dict()
    converted = dict(state_dict)  # identity: our module names are torchvision's
    check_state_dict(name, expected, converted)
    return converted


def _num_classes(state_dict: Mapping[str, Tensor]) -> int | None:
    for key in ("fc.weight", "classifier.6.weight"):
        if key in state_dict:
            return state_dict[key].shape[0]
    return None


def check_state_dict(
    name: str, expected: Mapping[str, Tensor], given: Mapping[str, Tensor], source: str | os.PathLike | None = None
) -> None:
    """Raise WeightsError unless `given` has exactly the keys and shapes of `expected`; the
    message lists missing and unexpected keys and shape mismatches (and names `source`)."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(given[k].shape)}"
        for k in expected
        if k in given and expected[k].shape != given[k].shape
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        where = f"{source}: " if source is not None else ""
        raise WeightsError(f"{where}state dict does not fit {name}: " + "; ".join(problems))


def load_into(
    model: torch.nn.Module, state_dict: Mapping[str, Tensor], name: str, source: str | os.PathLike | None = None
) -> None:
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
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        zipped = zipfile.is_zipfile(path)
    except zipfile.BadZipFile:  # is_zipfile raises for an archive that claims to span several disks
        zipped = False
    if not (zipped or head[:1] == b"\x80"):  # torch.save writes a zip, old versions a pickle
        raise WeightsError(
            f"{path}: not a PyTorch weights file (neither a zip nor a pickle); give a .pth, .pt or .safetensors file"
        )
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols on files it then refuses: one message
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "global" not in str(e).lower():
            raise WeightsError(f"{path}: not a readable PyTorch weights file ({reason[:200]})") from None
        raise WeightsError(
            f"{path}: refused: it holds objects other than tensors, which could run code when "
            f"unpickled ({reason[:200]}); only plain state dicts are loaded"
        ) from None
    except Exception as e:  # noqa: BLE001  (truncated zips, random bytes: many exception types)
        raise WeightsError(
            f"{path}: not a readable PyTorch weights file ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else 'empty'})"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    return dict(obj)
