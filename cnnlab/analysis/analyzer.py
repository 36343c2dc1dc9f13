"""Per-layer output shape, parameters, activation memory, multiply-adds and receptive field of
any nn.Module, and the memory of a training step.

Nothing is computed on real data: the model runs once on PyTorch's meta device (parameters
are swapped for meta tensors with `torch.func.functional_call`, the model itself is left as
it is), forward hooks mark the leaf modules and a TorchFunctionMode sees every tensor
operation, so functional calls (residual adds, concatenations, F.relu) are counted too.

Units and what is counted (also written into `Analysis.to_json()`):
- 1 MAC is one multiply-add; FLOPs = 2 x MACs.
- MACs are counted for the layers that multiply by weights: convolution (output values x
  input channels per group x kernel area; bias adds not counted), transposed convolution
  (input values x output channels per group x kernel area), linear and matrix products
  (output values x inner dimension), Euclidean distance layers (output values x vector
  length). Batch norm, pooling, activations, LRN, dropout, adds and concatenations count
  0 MACs: they are memory-bound, and the papers' and lectures' operation counts leave them out.
- activations: the number of values a layer outputs. activation_bytes: the memory those need
  of their own; 0 when the output shares the input's memory (in-place ReLU, eval-mode dropout,
  views such as flatten). Totals add the input, as the lectures' (CS231n) VGG-16 table does.
- receptive field (per axis, in input pixels) and jump (distance in input pixels between
  neighbouring outputs); `None` once a layer sees the whole input (linear layers, global pooling).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import CnnlabError, InputShapeError
from ..registry import get_model_info, meta_model
from .result import Analysis
from .tracer import Tracer, flat


def _declared_size(model: nn.Module) -> tuple | None:
    """The input size a model declares as `input_size` (C, H, W); not an RNN's `input_size`,
    which is its number of features."""
    size = getattr(model, "input_size", None)
    return tuple(size) if isinstance(size, (tuple, list)) else None


def _check_size(model_or_name, name: str, input_size: tuple) -> None:
    if any(not isinstance(s, int) or s < 1 for s in input_size):
        raise CnnlabError(f"input size must be positive integers, got {input_size}")
    declared = _declared_size(model_or_name) if not isinstance(model_or_name, str) else None
    if isinstance(model_or_name, str):
        declared = get_model_info(model_or_name).input_size
    if declared is not None and len(declared) != len(input_size):
        want = "x".join("?" if d is None else str(d) for d in declared)
        raise CnnlabError(
            f"{name} takes inputs of {len(declared)} dimensions without the batch ({want}), "
            f"got {'x'.join(map(str, input_size))}"
        )


def _check_batch_and_dtype(batch_size, dtype) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CnnlabError(f"batch_size must be at least 1, got {batch_size!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise CnnlabError(f"dtype must be a floating point type (float32, float16, bfloat16, float64), got {dtype}")


def _resolve(model_or_name, input_size):
    if isinstance(model_or_name, str):
        info = get_model_info(model_or_name)
        return meta_model(model_or_name), model_or_name, tuple(input_size or info.input_size)
    model = model_or_name
    name = getattr(model, "model_name", type(model).__name__)
    if input_size is None:
        input_size = _declared_size(model)
        if input_size is None or any(s is None for s in input_size):
            raise CnnlabError(f"{name}: give input_size, e.g. (3, 224, 224); the model does not declare one")
    return model, name, tuple(input_size)


def analyze(
    model_or_name: nn.Module | str,
    input_size: tuple[int, ...] | None = None,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    mode: str = "eval",
) -> Analysis:
    """Analyse a model (or a registered model's name) for one input size, per layer.

    `input_size` is (C, H, W) without the batch dimension (default: the registry's, or the
    model's `input_size` attribute). `mode` is "eval" or "train" (dropout, batch norm and
    GoogLeNet's auxiliary heads differ). The model is not changed and nothing is computed.
    """
    if mode not in ("eval", "train"):
        raise CnnlabError(f"mode must be 'eval' or 'train', got {mode!r}")
    _check_batch_and_dtype(batch_size, dtype)
    model, name, input_size = _resolve(model_or_name, input_size)
    _check_size(model_or_name, name, input_size)
    # one forward pass on the meta device, the model's parameters swapped for meta tensors
    tracer = Tracer(model, ndim=max(len(input_size) - 1, 0))
    state = meta_state(model, dtype)
    x = torch.empty(batch_size, *input_size, device="meta", dtype=dtype)
    tracer.track(x, (1,) * tracer.ndim, (1.0,) * tracer.ndim, 0)
    handles = tracer.hooks(model)
    was_training = model.training
    model.train(mode == "train")
    try:
        with torch.no_grad(), tracer:
            output = torch.func.functional_call(model, state, (x,))
    except InputShapeError:
        raise
    except (RuntimeError, ValueError) as e:
        raise CnnlabError(
            f"{name} cannot take input {batch_size}x{'x'.join(map(str, input_size))}: {str(e).splitlines()[0]}"
        ) from e
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    # parameters of modules this mode does not run (GoogLeNet's auxiliary classifiers in eval mode)
    idle = {n: p for n, p in model.named_parameters() if id(state[n]) not in tracer.seen_params}
    first = next((t for t in flat([output]) if isinstance(t, Tensor)), None)
    return Analysis(
        name,
        input_size,
        batch_size,
        str(dtype).replace("torch.", ""),
        mode,
        tracer.rows,
        _totals(model, tracer, x, output, idle),
        tuple(first.shape) if first is not None else (),
        _unused(model, idle),
    )


def meta_state(model: nn.Module, dtype: torch.dtype) -> dict[str, Tensor]:
    """Meta tensors for the model's parameters (floating ones in `dtype`) and buffers, for
    `torch.func.functional_call`: the model runs without its own tensors being touched. A model
    already on the meta device lends its own where the dtype fits (they hold no values)."""
    state = {}
    for k, v in [*model.named_parameters(), *model.named_buffers()]:
        want = dtype if v.is_floating_point() else v.dtype
        state[k] = v if v.is_meta and v.dtype == want else torch.empty_like(v, device="meta", dtype=want)
    for k, p in model.named_parameters():
        if state[k] is not p:
            state[k].requires_grad_(p.requires_grad)
    return state


def _totals(model: nn.Module, tracer: Tracer, x: Tensor, output, idle: dict) -> dict:
    params = {id(p): p for p in model.parameters()}.values()
    rows = tracer.rows
    item = x.element_size()
    totals = {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "macs": sum(r.macs for r in rows),
        "activations": x.numel() + sum(r.activations for r in rows if r.activation_bytes),
        "activation_bytes": x.numel() * item + sum(r.activation_bytes for r in rows),
        # layers with weights on the longest path from input to output (VGG-16: 16, GoogLeNet: 22)
        "depth": max((tracer.info[id(t)][2] for t in flat([output]) if id(t) in tracer.info), default=0),
    }
    totals["flops"] = 2 * totals["macs"]
    totals["unused_params"] = sum(p.numel() for p in idle.values())
    return totals


def _unused(model: nn.Module, idle: dict) -> tuple[str, ...]:
    """The outermost modules whose parameters are all idle."""
    modules = dict(model.named_modules())

    def all_idle(name: str) -> bool:
        names = [f"{name}.{n}" if name else n for n, _ in modules[name].named_parameters()]
        return bool(names) and all(n in idle for n in names)

    return tuple(n for n in modules if n and all_idle(n) and not all_idle(n.rsplit(".", 1)[0] if "." in n else ""))


# Optimiser state per trainable parameter, in parameter-sized tensors (PyTorch's optimisers).
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}


def training_memory(
    model_or_name: nn.Module | str,
    input_size: tuple[int, ...] | None = None,
    batch_size: int = 1,
    optimizer: str = "sgd",
    dtype: torch.dtype = torch.float32,
) -> dict:
    """Estimated memory of one training step, in bytes: weights (and buffers), gradients,
    optimiser state and the activations autograd saves for backward.

    The saved activations are the tensors autograd really saves, found by running the forward
    pass in train mode on the meta device under `torch.autograd.graph.saved_tensors_hooks`
    (tensors sharing memory are counted once; saved weights are not activations).
    """
    if optimizer not in OPTIMIZER_STATE:
        raise CnnlabError(f"optimizer must be one of {', '.join(OPTIMIZER_STATE)}, got {optimizer!r}")
    _check_batch_and_dtype(batch_size, dtype)
    model, name, input_size = _resolve(model_or_name, input_size)
    _check_size(model_or_name, name, input_size)
    params = list({id(p): p for p in model.parameters()}.values())
    item = torch.empty(0, dtype=dtype).element_size()

    def nbytes(t):
        return t.numel() * (item if t.is_floating_point() else t.element_size())

    state = meta_state(model, dtype)
    weight_storages = {t.untyped_storage()._cdata for t in state.values()}
    saved: dict[int, int] = {}

    def pack(t):
        sid = t.untyped_storage()._cdata
        if sid not in weight_storages:
            saved[sid] = t.untyped_storage().nbytes()
        return t

    x = torch.empty(batch_size, *input_size, device="meta", dtype=dtype)
    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            torch.func.functional_call(model, state, (x,))
    except (RuntimeError, ValueError) as e:
        if isinstance(e, InputShapeError):
            raise
        raise CnnlabError(
            f"{name} cannot take input {batch_size}x{'x'.join(map(str, input_size))}: {str(e).splitlines()[0]}"
        ) from e
    finally:
        model.train(was_training)
    trainable = sum(nbytes(p) for p in params if p.requires_grad)
    out = {
        "weights": sum(nbytes(p) for p in params) + sum(nbytes(b) for b in model.buffers()),
        "gradients": trainable,
        "optimizer_state": OPTIMIZER_STATE[optimizer] * trainable,
        "activations": sum(saved.values()),
    }
    out["total"] = sum(out.values())
    return out
