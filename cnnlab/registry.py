"""One registry of models: register_model, list_models, get_model_info, build_model."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

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


def check_num_classes(name: str, num_classes) -> None:
    """A ModelArgumentError unless `num_classes` is None or a whole number of at least 1."""
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ModelArgumentError(
            f"{name}: num_classes must be a whole number of at least 1, got {num_classes!r} "
            "(for features without a classifier: forward_head(x, pre_logits=True))"
        )


def build_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Build a registered model with its builder's own initialisation (`cnnlab.create_model` adds
    weights); `num_classes=None` keeps the paper's number of classes."""
    check_num_classes(name, num_classes)
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
