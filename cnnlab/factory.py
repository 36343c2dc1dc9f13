"""The one place a model is built: `create_model` (a registered network, with weights if asked
for) and `load_model` (a trained run). Weights are torchvision's published ImageNet files (see
cnnlab.weights), weights files of any origin, or cnnlab runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from . import weights as published
from .checkpoint import load, model_state
from .errors import ModelArgumentError, WeightsError
from .registry import build_model, check_num_classes, get_model_info, meta_model
from .runs import check_config, is_run, read_config, weights_file
from .weights import TORCHVISION_MODELS, check_state_dict, load_into, num_classes_in, read_state_dict


def create_model(
    name: str,
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    pretrained: bool = False,
    **kwargs,
) -> nn.Module:
    """Build a registered model; `num_classes=None` keeps the paper's number of classes.

    `weights`: None (the builder's initialisation), "imagenet" (torchvision's published weights,
    from the cache or downloaded and sha256-checked; timm's `pretrained=True` and torchvision's
    name "IMAGENET1K_V1" mean the same), a folder holding that file, a weights file
    (.safetensors or a PyTorch .pth state dict) or a cnnlab run. With `num_classes` different
    from the weights', the classifier is replaced by a new one."""
    if isinstance(weights, str) and weights.upper() == "IMAGENET1K_V1":
        weights = "imagenet"
    elif isinstance(weights, str) and (weights.upper() == "DEFAULT" or weights.upper().startswith("IMAGENET1K_")):
        raise ModelArgumentError(
            f"{name}: weights={weights!r} is a torchvision name that cnnlab does not serve; "
            "its published weights are weights='imagenet' (torchvision's IMAGENET1K_V1, the "
            "papers' networks; DEFAULT may be a later recipe's)"
        )
    if pretrained:
        if weights not in (None, "imagenet"):
            raise ModelArgumentError(
                f"{name}: pretrained=True means weights='imagenet'; give one of the two, "
                f"not weights={weights!r} as well"
            )
        weights = "imagenet"
    check_num_classes(name, num_classes)
    if weights is None:
        return build_model(name, num_classes, **kwargs)
    get_model_info(name)  # an unknown name is named as such before any file is looked at
    model = _with_weights(name, weights, kwargs)
    if num_classes is not None and num_classes != getattr(model, "num_classes", None):
        if not hasattr(model, "reset_classifier"):
            raise ModelArgumentError(
                f"{name} has no classifier layer to replace for num_classes={num_classes}; its weights "
                f"({weights}) fix its channels: leave num_classes out"
            )
        model.reset_classifier(num_classes)
    return model


def _with_weights(name: str, weights: str | os.PathLike, kwargs: dict) -> nn.Module:
    """`name` holding `weights`: published, a run, or a weights file (see `weights_kind`)."""
    path = Path(weights)
    kind = weights_kind(weights, name)
    if kind == "folder":
        raise WeightsError(
            f"{path}: holds neither a cnnlab run (config.json) nor published weights ({name} has "
            "none); give a run directory or a weights file"
        )
    if kind == "published":
        info = published.pretrained(name)  # raises where there are none
        source = published.fetch(info, None if str(weights) == "imagenet" else path)
        model = build_model(name, **{**info.build, **kwargs})
        load_into(model, model_state(read_state_dict(source)), name, source)
        model.pretrained = info
        return model
    if kind == "run":
        model = load_model(path)
        if model.model_name != name:
            raise WeightsError(f"{path} holds a {model.model_name}, not a {name}")
        run = read_config(path)
        trained = run.get("model_kwargs", {})
        if {**trained, **kwargs} != trained:
            model = with_options(model, run.get("num_classes"), {**trained, **kwargs}, path)
        return model
    if kind == "file":
        state = model_state(read_state_dict(path))
        build = {}
        if name in TORCHVISION_MODELS and path.suffix != ".safetensors":  # a torchvision file: its variant
            info = published.pretrained(name)
            build = info.build if path.name == info.filename else TORCHVISION_MODELS[name][1]
        build = {**build, **kwargs}
        model = build_model(name, num_classes=num_classes_in(name, state, **build), **build)
        load_into(model, state, name, path)
        return model
    raise WeightsError(
        f'weights {str(weights)!r}: no such file or directory; use "imagenet", a weights file '
        "(.safetensors, .pth), a cnnlab run directory or a folder holding the published file"
    )


def with_options(trained: nn.Module, num_classes: int | None, kwargs: dict, source: str | os.PathLike) -> nn.Module:
    """`trained`'s network built again with other builder options `kwargs`, holding every layer
    `trained` has (same names and shapes, else WeightsError); the layers the options add keep
    their initialisation. The two-stage recipe of Yu & Koltun: train the dilated front end, then
    add the context module (context=True) on top of it."""
    name = trained.model_name
    model = build_model(name, num_classes=num_classes, **kwargs)
    state = trained.state_dict()
    kept = {k: v for k, v in model.state_dict().items() if k in state}
    try:
        check_state_dict(name, kept, state, source)
    except WeightsError as e:
        raise WeightsError(f"{e} (built with {kwargs})") from None
    model.load_state_dict(state, strict=False)
    return model


def weights_kind(weights: str | os.PathLike, name: str | None = None) -> str:
    """What `weights` names: "published" ("imagenet", or a folder holding torchvision's file for
    `name`, or for any model if `name` is None), "run" (a cnnlab run directory or run file),
    "file" (another weights file), "folder" (a folder that is neither) or "missing"."""
    path = Path(weights)
    if str(weights) == "imagenet":
        return "published"
    if path.is_dir() and not (path / "config.json").is_file():
        return "published" if name is None or name in TORCHVISION_MODELS else "folder"
    if path.is_dir() or is_run(path):
        return "run"
    return "file" if path.is_file() else "missing"


def weights_config(weights: str | os.PathLike) -> dict | None:
    """The configuration of a cnnlab run given as weights (None for other weights)."""
    return read_config(weights) if weights_kind(weights) == "run" else None


def input_normalization(weights: str | os.PathLike, name: str) -> tuple[list, list] | None:
    """The input normalisation (mean, std per channel) that `name`'s `weights` were trained with:
    the published weights' own (ImageNet's), a cnnlab run's; None when a bare file does not say."""
    kind = weights_kind(weights, name)
    if kind == "published":
        info = published.pretrained(name)
        return list(info.mean), list(info.std)
    source = weights_config(weights) if kind == "run" else None
    return (source["mean"], source["std"]) if source else None


def load_model(path: str | os.PathLike, weights: str = "model") -> nn.Module:
    """Rebuild a trained model from a run directory (its `weights`.safetensors: model, best) or
    from one of its .safetensors files; the model takes normalised (N, C, H, W) float input
    (the run's config.json says `mean` and `std`)."""
    file = weights_file(path, weights)
    tensors, meta = load(file)
    cfg = meta.get("config")
    if not cfg:
        raise WeightsError(f"{file}: no cnnlab configuration in its metadata; is it a cnnlab run file?")
    check_config(cfg, file, need=())
    n = cfg.get("num_classes")
    info = get_model_info(cfg["model"])
    model = build_model(cfg["model"], num_classes=n if n != info.num_classes else None, **cfg.get("model_kwargs", {}))
    load_into(model, model_state(tensors), cfg["model"], file)
    return model.eval()


def count_params(name: str) -> int:
    """Parameters of a registered model, counted on the meta device (nothing is allocated)."""
    return sum(p.numel() for p in meta_model(name).parameters())


def build_for_analysis(
    source: str, model_kwargs: dict | None = None, input_size: tuple | None = None
) -> tuple[nn.Module | str, tuple | None]:
    """What `analyze` takes for `source`: a registered name itself; with builder arguments, the
    model they build; for a run directory, the run's model (its classes and builder arguments)
    and its input size. Models are built on the meta device: nothing is allocated or computed."""
    kwargs, num_classes = dict(model_kwargs or ()), None
    if Path(source).is_dir():
        cfg = read_config(source, need=("input_size",))
        kwargs, num_classes = {**cfg.get("model_kwargs", {}), **kwargs}, cfg.get("num_classes")
        input_size = input_size or tuple(cfg["input_size"])
        name = cfg["model"]
    elif not kwargs:
        return source, input_size
    else:
        name = source
    return meta_model(name, num_classes, **kwargs), input_size
