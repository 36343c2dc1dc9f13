"""One registry of models: register_model, create_model, list_models, get_model_info."""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass
from typing import Callable

from torch import nn

from .errors import CnnlabError, ModelArgumentError, UnknownModelError


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model without building it."""

    name: str
    paper: str
    year: int
    input_size: tuple[int, ...]  # (C, H, W), or (features,) for an MLP on vectors
    num_classes: int
    description: str  # the builder's docstring, first line


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_INFO: dict[str, ModelInfo] = {}


def register_model(*, paper: str, year: int, input_size: tuple[int, ...], num_classes: int):
    """Decorator that registers a builder under its function name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _BUILDERS:
            raise RuntimeError(f"model {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _BUILDERS[name] = fn
        _INFO[name] = ModelInfo(name, paper, year, tuple(input_size), num_classes, doc[0] if doc else "")
        return fn

    return wrap


def _lookup(name: str) -> str:
    if name in _BUILDERS:
        return name
    close = difflib.get_close_matches(name, list(_BUILDERS), n=5, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else "; `cnnlab models` lists them all"
    raise UnknownModelError(f"unknown model {name!r}{hint}")


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; `pattern` is a shell-style wildcard such as 'resnet*'."""
    names = sorted(_BUILDERS)
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def get_model_info(name: str) -> ModelInfo:
    """Paper, year, default input size (C, H, W), default classes and a description."""
    return _INFO[_lookup(name)]


def create_model(name: str, num_classes: int | None = None, weights: str | os.PathLike | None = None,
                 pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered model; `num_classes=None` keeps the paper's number of classes.

    `weights`: None (the builder's initialisation), "imagenet" (torchvision's published weights,
    from the cache or downloaded and sha256-checked; timm's `pretrained=True` and torchvision's
    name "IMAGENET1K_V1" mean the same), a folder holding that file, a weights file
    (.safetensors or a PyTorch .pth state dict) or a cnnlab run. With `num_classes` different
    from the weights', the classifier is replaced by a new one (see cnnlab.weights)."""
    if isinstance(weights, str) and weights.upper() == "IMAGENET1K_V1":
        weights = "imagenet"
    elif isinstance(weights, str) and (weights.upper() == "DEFAULT" or weights.upper().startswith("IMAGENET1K_")):
        raise ModelArgumentError(f"{name}: weights={weights!r} is a torchvision name that cnnlab does not serve; "
                                 "its published weights are weights='imagenet' (torchvision's IMAGENET1K_V1, the "
                                 "papers' networks; DEFAULT may be a later recipe's)")
    if pretrained:
        if weights not in (None, "imagenet"):
            raise ModelArgumentError(f"{name}: pretrained=True means weights='imagenet'; give one of the two, "
                                     f"not weights={weights!r} as well")
        weights = "imagenet"
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ModelArgumentError(f"{name}: num_classes must be a whole number of at least 1, got {num_classes!r} "
                                 "(for features without a classifier: forward_head(x, pre_logits=True))")
    if weights is not None:
        from .weights import build_with_weights

        return build_with_weights(_lookup(name), weights, num_classes, kwargs)
    builder = _BUILDERS[_lookup(name)]
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        model = builder(**kwargs)
    except (TypeError, ValueError) as e:
        if not kwargs or isinstance(e, CnnlabError):
            raise
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ModelArgumentError(f"{name} cannot be built with {given}: {e}") from None
    model.model_name = name  # used in error messages, e.g. by InputShapeError
    return model
