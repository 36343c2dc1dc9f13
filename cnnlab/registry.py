"""One registry of models: register_model, list_models, get_model_info, build_model, meta_model."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

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
    given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    try:
        model = builder(**kwargs)
    except (TypeError, ValueError) as e:
        if not kwargs or isinstance(e, CnnlabError):
            raise
        raise ModelArgumentError(f"{name} cannot be built with {given}: {e}") from None
    except (MemoryError, RuntimeError) as e:  # an allocator that cannot give the weights their memory
        if not isinstance(e, MemoryError) and "alloc" not in str(e):
            raise
        raise ModelArgumentError(
            f"{name} with {given or 'its defaults'} does not fit in memory; make it smaller (its width, its layers)"
        ) from None
    model.model_name = name  # used in error messages, e.g. by InputShapeError
    return model


# in-place operations that only set values, which a tensor on the meta device does not have
_VALUE_SETTERS = {
    "normal_",
    "uniform_",
    "trunc_normal_",
    "fill_",
    "zero_",
    "random_",
    "exponential_",
    "log_normal_",
    "cauchy_",
    "geometric_",
    "bernoulli_",
    "copy_",
    "mul_",
    "add_",
    "sub_",
    "div_",
    "clamp_",
    "clamp_min_",
    "clamp_max_",
    "erfinv_",
    "abs_",
    "sqrt_",
    "fmod_",
    "remainder_",
}


class _SkipValues(TorchFunctionMode):
    """Inside: the builders' initialisation of meta tensors is skipped. There are no values to
    draw, and PyTorch runs random draws on the meta device through a slow Python decomposition
    (half the time of building ResNet-152 there)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in _VALUE_SETTERS and args and isinstance(args[0], Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


_META: dict[str, nn.Module] = {}  # the meta models of plain names, built once


def meta_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """A registered model on PyTorch's meta device: every shape, no memory and no values, for
    counting and analysis. A model of a plain name (no other arguments) is built once and kept;
    callers must not change it."""
    plain = num_classes is None and not kwargs
    if plain and name in _META:
        return _META[name]
    with torch.device("meta"), _SkipValues():
        model = build_model(name, num_classes, **kwargs)
    if plain:
        _META[name] = model
    return model
