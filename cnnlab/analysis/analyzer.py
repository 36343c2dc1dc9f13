"""Per-layer output shape, parameters, activation memory, multiply-adds and receptive field of
any nn.Module, plus the conv arithmetic the lectures do by hand.

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

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .errors import CnnlabError, ConvArithmeticError, InputShapeError

UNITS = {
    "macs": "multiply-adds of conv, transposed conv, linear/matmul/einsum, attention (projections, "
            "query-key products, weighted values), recurrent (RNN, LSTM, GRU) and distance layers; "
            "bias adds, norm, pooling, activations, softmax, LRN, dropout, adds and concatenations count 0",
    "flops": "2 x macs",
    "activations": "number of output values",
    "activation_bytes": "bytes of outputs that need memory of their own (0 for in-place ops and views); "
                        "the totals include the input",
    "receptive_field": "input pixels per axis (H, W) that one output value depends on; null: the whole input",
    "jump": "input pixels per axis between neighbouring output values",
}

KINDS = ("conv", "fc", "norm", "pool", "other")
_CONV = {"conv1d", "conv2d", "conv3d"}
_CONV_T = {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
_FC = {"linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "cdist", "bilinear",
       "scaled_dot_product_attention", "multi_head_attention_forward"}
_NORM = {"batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm"}
_POOL = {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
         "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
         "adaptive_max_pool2d", "adaptive_max_pool3d", "max_pool2d_with_indices"}
_SAME_SHAPE = {"batch_norm", "layer_norm", "group_norm", "instance_norm"}
# functional ops that only re-describe memory: tracked for receptive fields, but not listed as rows
_VIEWS = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose",
          "t", "expand", "contiguous", "detach", "getitem", "narrow", "select", "split", "chunk", "unbind"}


def _kind_of(fname: str) -> str | None:
    if fname in _CONV or fname in _CONV_T:
        return "conv"
    if fname in _FC:
        return "fc"
    if fname in _NORM:
        return "norm"
    if fname in _POOL:
        return "pool"
    return None


def _fname(func) -> str:
    name = getattr(func, "__name__", str(func))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith("i") and name[1:] in ("add", "sub", "mul", "truediv", "and", "or"):
            name = name[1:] + "_"  # __iadd__ -> add_
        elif name.startswith("r") and name[1:] in ("add", "sub", "mul", "truediv"):
            name = name[1:]
    return name


def _pair(v, n: int = 2) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


@dataclass
class LayerRow:
    """One leaf module call or one functional op outside a leaf module."""

    name: str
    type: str
    kind: str
    output_shape: tuple[int, ...]
    params: int = 0
    trainable_params: int = 0
    activations: int = 0
    activation_bytes: int = 0
    macs: int = 0
    receptive_field: tuple[int, ...] | None = None
    jump: tuple[float, ...] | None = None
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | None = None
    dilation: tuple[int, ...] | None = None
    groups: int | None = None


@dataclass
class Analysis:
    """The result of `analyze`: per-layer rows, totals and a breakdown by kind."""

    model: str
    input_size: tuple[int, ...]
    batch_size: int
    dtype: str
    mode: str
    layers: list[LayerRow]
    totals: dict[str, int] = field(default_factory=dict)
    output_shape: tuple[int, ...] = ()
    unused: tuple[str, ...] = ()  # modules with parameters that this mode does not run

    def breakdown(self) -> dict[str, dict[str, int]]:
        """Parameters and MACs by layer kind (conv, fc, norm, pool, other)."""
        out = {k: {"params": 0, "macs": 0} for k in KINDS}
        for row in self.layers:
            out[row.kind]["params"] += row.params
            out[row.kind]["macs"] += row.macs
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input_size": list(self.input_size), "batch_size": self.batch_size,
                "dtype": self.dtype, "mode": self.mode, "output_shape": list(self.output_shape), "units": UNITS, "totals": self.totals,
                "breakdown": self.breakdown(), "unused": list(self.unused), "layers": [asdict(r) for r in self.layers]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def _cells(self, row: LayerRow) -> list[str]:
        rf = "-" if row.receptive_field is None else _fmt_axes(row.receptive_field)
        return [row.name, row.type, "x".join(map(str, row.output_shape)), f"{row.params:,}",
                f"{row.activations:,}", f"{row.activation_bytes:,}", f"{row.macs:,}", rf]

    HEADER = ["layer", "type", "output", "params", "activations", "act. bytes", "MACs", "RF"]

    def table(self, fmt: str = "text") -> str:
        """The per-layer table and totals as plain text, Markdown or CSV."""
        rows = [self._cells(r) for r in self.layers]
        t = self.totals
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["layer", "type", "kind", "output", "params", "trainable_params", "activations",
                        "activation_bytes", "macs", "receptive_field", "jump"])
            for r in self.layers:
                w.writerow([r.name, r.type, r.kind, "x".join(map(str, r.output_shape)), r.params,
                            r.trainable_params, r.activations, r.activation_bytes, r.macs,
                            "" if r.receptive_field is None else _fmt_axes(r.receptive_field),
                            "" if r.jump is None else _fmt_axes(r.jump)])
            return buf.getvalue()
        summary = [
            f"model {self.model}, input {self.batch_size}x" + "x".join(map(str, self.input_size))
            + f", {self.dtype}, {self.mode} mode",
            f"params {t['params']:,} (trainable {t['trainable_params']:,}), "
            f"MACs {t['macs']:,} = {_si(t['macs'])}MAC, FLOPs {_si(t['flops'])}FLOP",
            f"activations {t['activations']:,} values, {_si(t['activation_bytes'], 1024)}B "
            "(input plus outputs with memory of their own)",
        ]
        kinds = self.breakdown()
        total_p, total_m = max(t["params"], 1), max(t["macs"], 1)
        split = ", ".join(f"{k} {100 * v['params'] / total_p:.1f}% params / {100 * v['macs'] / total_m:.1f}% MACs"
                          for k, v in kinds.items() if v["params"] or v["macs"])
        summary.append("by kind: " + split)
        if t.get("unused_params"):
            summary.append(f"not run in {self.mode} mode: {t['unused_params']:,} params "
                           f"({100 * t['unused_params'] / total_p:.1f}%) in {', '.join(self.unused)}")
        if fmt == "markdown":
            lines = ["| " + " | ".join(self.HEADER) + " |", "|" + "---|" * len(self.HEADER)]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
            return "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary) + "\n"
        if fmt != "text":
            raise ValueError(f"format must be text, markdown or csv, got {fmt!r}")
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(self.HEADER)]
        right = {3, 4, 5, 6, 7}
        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        out = [line(self.HEADER), line(["-" * w for w in widths])] + [line(r) for r in rows]
        return "\n".join(out) + "\n\n" + "\n".join(summary) + "\n"

    def __str__(self) -> str:
        return self.table()


def _fmt_axes(v) -> str:
    v = [int(x) if float(x).is_integer() else round(x, 3) for x in v]
    return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))


def _si(n: float, base: int = 1000) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < base:
            return f"{n:.2f} {unit}" if unit else f"{n:.0f} "
        n /= base
    return f"{n:.2f} P"


class _Tracer(TorchFunctionMode):
    """Sees every tensor operation; attributes MACs to the innermost leaf module and records
    functional ops that happen outside leaf modules. Tracks receptive field and jump per tensor."""

    def __init__(self, ndim: int):
        super().__init__()
        self.ndim = ndim  # spatial axes
        self.info: dict[int, tuple] = {}  # id(tensor) -> (rf, jump, depth); rf None: the whole input
        self.keep: list[Tensor] = []  # keeps tracked tensors alive so their ids stay unique
        self.stack: list[nn.Module] = []  # modules being executed
        self.leaf: dict | None = None  # accumulator of the innermost leaf module call
        self.rows: list[LayerRow] = []
        self.paused = False
        self.prefix: dict[nn.Module, str] = {}

    def track(self, t: Tensor, rf, jump, depth: int = 0) -> None:
        self.info[id(t)] = (rf, jump, depth)
        self.keep.append(t)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _fname(func)
        if not self.paused and name in _SAME_SHAPE and isinstance(args[0], Tensor):
            out = torch.empty_like(args[0])  # PyTorch's meta batch norm is a slow Python decomposition
        else:
            out = func(*args, **kwargs)
        if self.paused:
            return out
        inputs = [a for a in _flat(args) if isinstance(a, Tensor) and id(a) in self.info]
        inputs += [a for a in _flat(kwargs.values()) if isinstance(a, Tensor) and id(a) in self.info]
        if not inputs:
            return out  # not on the data path (e.g. weight arithmetic)
        rf, jump, macs, geometry = self._effect(name, args, kwargs, inputs, out)
        depth = max(self.info[id(t)][2] for t in inputs) + (name in _CONV or name in _CONV_T or name in _FC)
        for t in _flat([out]):
            if isinstance(t, Tensor):
                self.track(t, rf, jump, depth)
        kind = _kind_of(name)
        if self.leaf is not None:
            acc = self.leaf
            acc["macs"] += macs
            if kind and (acc["kind"] is None or KINDS.index(kind) < KINDS.index(acc["kind"])):
                acc["kind"], acc["geometry"] = kind, geometry
        elif name not in _VIEWS and isinstance(out, Tensor):
            owner = self.prefix.get(self.stack[-1], "") if self.stack else ""
            row = LayerRow(name=f"{owner}.{name}" if owner else name, type=name, kind=kind or "other",
                           output_shape=tuple(out.shape), macs=macs)
            self._fill_output(row, out, inputs)
            _set_geometry(row, geometry)
            self.rows.append(row)
        return out

    def _fill_output(self, row: LayerRow, out, inputs) -> None:
        tensors = [t for t in _flat([out]) if isinstance(t, Tensor)]
        row.activations = sum(t.numel() for t in tensors)
        in_storages = {t.untyped_storage()._cdata for t in inputs}
        row.activation_bytes = sum(t.numel() * t.element_size() for t in tensors
                                   if t.untyped_storage()._cdata not in in_storages)
        if tensors and id(tensors[0]) in self.info:
            rf, jump, _ = self.info[id(tensors[0])]
            row.receptive_field = None if rf is None else tuple(int(r) for r in rf)
            row.jump = None if jump is None else tuple(jump)

    def _effect(self, name, args, kwargs, inputs, out):
        """Receptive field, jump, MACs and geometry of one operation."""
        known = [self.info[id(t)][:2] for t in inputs]
        if any(rf is None for rf, _ in known):
            rf = jump = None
        else:
            rf = tuple(max(r[i] for r, _ in known) for i in range(self.ndim))
            jump = tuple(max(j[i] for _, j in known) for i in range(self.ndim))
        macs, geometry = 0, None
        x = inputs[0]

        def arg(i, key, default):
            return args[i] if len(args) > i else kwargs.get(key, default)

        if name in _CONV or name in _CONV_T:
            weight = arg(1, "weight", None)
            n = weight.ndim - 2
            k = tuple(weight.shape[2:])
            stride, padding = _pair(arg(3, "stride", 1), n), arg(4, "padding", 0)
            if name in _CONV:
                dilation, groups = _pair(arg(5, "dilation", 1), n), arg(6, "groups", 1)
                macs = out.numel() * weight.shape[1] * math.prod(k)
                rf, jump = _grow(rf, jump, k, stride, dilation, n)
            else:  # conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation)
                groups, dilation = arg(6, "groups", 1), _pair(arg(7, "dilation", 1), n)
                macs = x.numel() * weight.shape[1] * math.prod(k)
                if rf is not None and n == self.ndim:
                    span = [math.ceil(((kk - 1) * d + 1) / s) for kk, s, d in zip(k, stride, dilation)]
                    rf = tuple(r + (sp - 1) * j for r, sp, j in zip(rf, span, jump))
                    jump = tuple(j / s for j, s in zip(jump, stride))
            padding = padding if isinstance(padding, str) else _pair(padding, n)
            geometry = dict(kernel=k, stride=stride, padding=padding, dilation=dilation, groups=groups)
        elif name in ("linear", "bilinear"):
            weight = arg(1, "weight", None)
            macs = out.numel() * weight.shape[-1]
            rf = jump = None
        elif name in ("matmul", "mm", "bmm"):
            macs = out.numel() * args[0].shape[-1]
            rf = jump = None
        elif name in ("addmm", "baddbmm"):
            macs = out.numel() * args[1].shape[-1]
            rf = jump = None
        elif name == "einsum":  # a contraction: every combination of the indices is one multiply-add
            operands = [a for a in _flat(args[1:]) if isinstance(a, Tensor)]
            sizes = {}
            for spec, t in zip(args[0].replace(" ", "").split("->")[0].split(","), operands):
                if "..." not in spec:
                    sizes.update(zip(spec, t.shape))
            macs = math.prod(sizes.values()) if len(operands) == 2 and sizes else 0
            rf = jump = None
        elif name == "scaled_dot_product_attention":  # q (..., L, E), k (..., S, E), v (..., S, Ev)
            q, k, v = args[:3]
            macs = math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
            rf = jump = None
        elif name == "multi_head_attention_forward":
            macs = _mha_macs(args, kwargs)
            rf = jump = None
        elif name == "cdist":
            macs = out.numel() * args[0].shape[-1]
            rf = jump = None
        elif name in _POOL and "adaptive" not in name:
            n = x.ndim - 2
            k = _pair(arg(1, "kernel_size", 1), n)
            stride = arg(2, "stride", None)
            stride = k if stride in (None, [], ()) else _pair(stride, n)
            padding = _pair(arg(3, "padding", 0), n)
            dilation = _pair(arg(4, "dilation", 1), n) if "max" in name else (1,) * n
            rf, jump = _grow(rf, jump, k, stride, dilation, n)
            geometry = dict(kernel=k, stride=stride, padding=padding, dilation=dilation)
        elif name in _POOL:  # adaptive pooling: exact when the input size is a multiple of the output's
            spatial_in, spatial_out = x.shape[2:], out.shape[2:]
            if all(o == 1 for o in spatial_out) and any(i > 1 for i in spatial_in):
                rf = jump = None
            else:
                stride = tuple(max(i // o, 1) for i, o in zip(spatial_in, spatial_out))
                k = tuple(i - (o - 1) * s for i, o, s in zip(spatial_in, spatial_out, stride))
                rf, jump = _grow(rf, jump, k, stride, (1,) * len(k), len(k))
                geometry = dict(kernel=k, stride=stride)
        return rf, jump, macs, geometry


def _mha_macs(args, kwargs) -> int:
    """nn.MultiheadAttention (F.multi_head_attention_forward, sequence first): the query, key and
    value projections, the query-key products, the weighted sum of values, the output projection."""
    q, k, v = args[:3]
    e = args[3] if len(args) > 3 else kwargs["embed_dim_to_check"]
    batch = q.shape[1] if q.ndim == 3 else 1
    length, source = q.shape[0], k.shape[0]
    projections = batch * (length * e * q.shape[-1] + source * e * k.shape[-1] + source * e * v.shape[-1])
    return projections + 2 * batch * length * source * e + batch * length * e * e


def _rnn_macs(rnn: nn.RNNBase, x: Tensor) -> int:
    """nn.RNN, nn.LSTM, nn.GRU: every step of every layer and direction multiplies the input and
    the previous hidden state by the gates' weights (4 gates for an LSTM, 3 for a GRU, 1 for an
    RNN), and an LSTM with proj_size projects its hidden state."""
    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)
    steps = x.shape[1] * x.shape[0] if x.ndim == 3 else x.shape[0]  # (N, L, I), (L, N, I) or (L, I)
    dirs = 2 if rnn.bidirectional else 1
    out = rnn.proj_size or rnn.hidden_size
    macs = 0
    for layer in range(rnn.num_layers):
        inp = rnn.input_size if layer == 0 else out * dirs
        macs += dirs * (gates * rnn.hidden_size * (inp + out) + rnn.hidden_size * rnn.proj_size)
    return steps * macs


def _grow(rf, jump, k, stride, dilation, n):
    if rf is None or n != len(rf):
        return rf, jump
    rf = tuple(r + (kk - 1) * d * j for r, kk, d, j in zip(rf, k, dilation, jump))
    jump = tuple(j * s for j, s in zip(jump, stride))
    return rf, jump


def _set_geometry(row: LayerRow, geometry: dict | None) -> None:
    if geometry:
        for key, value in geometry.items():
            setattr(row, key, value)


def _flat(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flat(item)
        else:
            yield item


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
        from .registry import get_model_info
        declared = get_model_info(model_or_name).input_size
    if declared is not None and len(declared) != len(input_size):
        want = "x".join("?" if d is None else str(d) for d in declared)
        raise CnnlabError(f"{name} takes inputs of {len(declared)} dimensions without the batch ({want}), "
                          f"got {'x'.join(map(str, input_size))}")


def _resolve(model_or_name, input_size):
    from .registry import create_model, get_model_info

    if isinstance(model_or_name, str):
        info = get_model_info(model_or_name)
        with torch.device("meta"):
            model = create_model(model_or_name)
        return model, model_or_name, tuple(input_size or info.input_size)
    model = model_or_name
    name = getattr(model, "model_name", type(model).__name__)
    if input_size is None:
        input_size = _declared_size(model)
        if input_size is None or any(s is None for s in input_size):
            raise CnnlabError(f"{name}: give input_size, e.g. (3, 224, 224); the model does not declare one")
    return model, name, tuple(input_size)


def analyze(model_or_name: nn.Module | str, input_size: tuple[int, ...] | None = None, batch_size: int = 1,
            dtype: torch.dtype = torch.float32, mode: str = "eval") -> Analysis:
    """Analyse a model (or a registered model's name) for one input size, per layer.

    `input_size` is (C, H, W) without the batch dimension (default: the registry's, or the
    model's `input_size` attribute). `mode` is "eval" or "train" (dropout, batch norm and
    GoogLeNet's auxiliary heads differ). The model is not changed and nothing is computed.
    """
    if mode not in ("eval", "train"):
        raise CnnlabError(f"mode must be 'eval' or 'train', got {mode!r}")
    if batch_size < 1:
        raise CnnlabError(f"batch_size must be at least 1, got {batch_size}")
    model, name, input_size = _resolve(model_or_name, input_size)
    _check_size(model_or_name, name, input_size)
    tracer = _Tracer(ndim=max(len(input_size) - 1, 0))
    tracer.prefix = {m: n for n, m in model.named_modules()}
    # one row per leaf module; nn.MultiheadAttention is one too: its forward is a single functional
    # call that uses out_proj's weights without calling out_proj
    composite = {m for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    leaves = {m for m in model.modules() if not any(True for _ in m.children())} | composite
    seen_params: set[int] = set()

    def pre_hook(module, args):
        tracer.stack.append(module)
        if module in leaves:
            tracer.leaf = {"macs": 0, "kind": None, "geometry": None, "inputs": list(_flat(args))}

    def post_hook(module, args, output):
        tracer.paused = True
        try:
            tracer.stack.pop()
            if module not in leaves:
                return
            acc, tracer.leaf = tracer.leaf, None
            tensors = [t for t in _flat([output]) if isinstance(t, Tensor)]
            if not tensors:
                return
            own = [p for p in module.parameters(recurse=module in composite)]
            new = [p for p in own if id(p) not in seen_params]
            seen_params.update(id(p) for p in own)
            macs = acc["macs"]
            if hasattr(module, "count_macs"):
                macs = module.count_macs(tensors[0])
            elif isinstance(module, nn.RNNBase):
                macs = _rnn_macs(module, next(t for t in _flat(acc["inputs"]) if isinstance(t, Tensor)))
            row = LayerRow(name=tracer.prefix.get(module, ""), type=type(module).__name__,
                           kind=acc["kind"] or _module_kind(module), output_shape=tuple(tensors[0].shape),
                           params=sum(p.numel() for p in new),
                           trainable_params=sum(p.numel() for p in new if p.requires_grad), macs=macs)
            inputs = [t for t in acc["inputs"] if isinstance(t, Tensor)]
            tracer._fill_output(row, output, inputs)
            _set_geometry(row, acc["geometry"])
            tracer.rows.append(row)
        finally:
            tracer.paused = False

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre_hook))
        handles.append(m.register_forward_hook(post_hook))
    state = {k: torch.empty_like(v, device="meta", dtype=v.dtype if not v.is_floating_point() else dtype)
             for k, v in [*model.named_parameters(), *model.named_buffers()]}
    for k, p in model.named_parameters():
        state[k].requires_grad_(p.requires_grad)
    x = torch.empty(batch_size, *input_size, device="meta", dtype=dtype)
    tracer.track(x, (1,) * tracer.ndim, (1.0,) * tracer.ndim, 0)
    was_training = model.training
    model.train(mode == "train")
    try:
        with torch.no_grad(), tracer:
            output = torch.func.functional_call(model, state, (x,))
    except InputShapeError:
        raise
    except (RuntimeError, ValueError) as e:
        raise CnnlabError(f"{name} cannot take input {batch_size}x{'x'.join(map(str, input_size))}: "
                          f"{str(e).splitlines()[0]}") from e
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    params = {id(p): p for p in model.parameters()}.values()
    rows = tracer.rows
    item = torch.empty(0, dtype=dtype).element_size()
    activations = x.numel() + sum(r.activations for r in rows if r.activation_bytes)
    totals = {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "macs": sum(r.macs for r in rows),
        "activations": activations,
        "activation_bytes": x.numel() * item + sum(r.activation_bytes for r in rows),
        # layers with weights on the longest path from input to output (VGG-16: 16, GoogLeNet: 22)
        "depth": max((tracer.info[id(t)][2] for t in _flat([output]) if id(t) in tracer.info), default=0),
    }
    totals["flops"] = 2 * totals["macs"]
    # parameters of modules this mode does not run (GoogLeNet's auxiliary classifiers in eval mode)
    idle = {n: p for n, p in model.named_parameters() if id(state[n]) not in seen_params}  # the call used `state`
    totals["unused_params"] = sum(p.numel() for p in idle.values())
    modules = dict(model.named_modules())

    def all_idle(name: str) -> bool:
        names = [f"{name}.{n}" if name else n for n, _ in modules[name].named_parameters()]
        return bool(names) and all(n in idle for n in names)
    unused = tuple(n for n in modules if n and all_idle(n) and not all_idle(n.rsplit(".", 1)[0] if "." in n else ""))
    first = next((t for t in _flat([output]) if isinstance(t, Tensor)), None)
    return Analysis(name, input_size, batch_size, str(dtype).replace("torch.", ""), mode, rows, totals,
                    tuple(first.shape) if first is not None else (), unused)


def _module_kind(module: nn.Module) -> str:
    name = type(module).__name__
    if "Conv" in name:
        return "conv"
    if name in ("Linear", "Bilinear", "LazyLinear"):
        return "fc"
    if "Norm" in name:
        return "norm"
    if "Pool" in name:
        return "pool"
    return "other"


# Optimiser state per trainable parameter, in parameter-sized tensors (PyTorch's optimisers).
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}


def training_memory(model_or_name: nn.Module | str, input_size: tuple[int, ...] | None = None,
                    batch_size: int = 1, optimizer: str = "sgd", dtype: torch.dtype = torch.float32) -> dict:
    """Estimated memory of one training step, in bytes: weights (and buffers), gradients,
    optimiser state and the activations autograd saves for backward.

    The saved activations are the tensors autograd really saves, found by running the forward
    pass in train mode on the meta device under `torch.autograd.graph.saved_tensors_hooks`
    (tensors sharing memory are counted once; saved weights are not activations).
    """
    if optimizer not in OPTIMIZER_STATE:
        raise CnnlabError(f"optimizer must be one of {', '.join(OPTIMIZER_STATE)}, got {optimizer!r}")
    model, name, input_size = _resolve(model_or_name, input_size)
    _check_size(model_or_name, name, input_size)
    params = list({id(p): p for p in model.parameters()}.values())
    item = torch.empty(0, dtype=dtype).element_size()

    def nbytes(t):
        return t.numel() * (item if t.is_floating_point() else t.element_size())

    state = {k: torch.empty_like(v, device="meta", dtype=dtype if v.is_floating_point() else v.dtype)
             for k, v in [*model.named_parameters(), *model.named_buffers()]}
    for k, p in model.named_parameters():
        state[k].requires_grad_(p.requires_grad)
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
        raise CnnlabError(f"{name} cannot take input {batch_size}x{'x'.join(map(str, input_size))}: "
                          f"{str(e).splitlines()[0]}") from e
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


# The lectures' conv arithmetic, by hand.
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                     strict: bool = True) -> int:
    """Output size of a convolution: (N + 2P - D(F - 1) - 1) / S + 1.

    With `strict=True` a non-integer result raises ConvArithmeticError naming the paddings that
    fit; `strict=False` rounds down, as PyTorch does.
    """
    _check_positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
    span = dilation * (kernel - 1) + 1
    room = size + 2 * padding - span
    if room < 0:
        raise ConvArithmeticError(f"kernel {kernel} (dilation {dilation}) spans {span} pixels but the input "
                                  f"is {size} + 2*{padding} padding = {size + 2 * padding}")
    if room % stride and strict:
        fits = [p for p in range(0, span + stride) if (size + 2 * p - span) >= 0 and (size + 2 * p - span) % stride == 0]
        raise ConvArithmeticError(
            f"({size} + 2*{padding} - {dilation}*({kernel} - 1) - 1) / {stride} + 1 = {room / stride + 1:g} "
            f"is not an integer: the last {room % stride} pixel(s) would be dropped (PyTorch rounds down to "
            f"{room // stride + 1}); "
            + (f"paddings that fit: {', '.join(map(str, fits[:6]))}" if fits else
               f"no padding fits; input sizes that fit unpadded: {size - room % stride}, "
               f"{size - room % stride + stride}"))
    return room // stride + 1


def pool_output_size(size: int, kernel: int, stride: int | None = None, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False, strict: bool = True) -> int:
    """Output size of max/average pooling (stride defaults to the kernel size). With
    `ceil_mode=True` the result rounds up as in PyTorch and Caffe (a last window must start
    inside the input or its left padding); otherwise it is `conv_output_size`."""
    stride = kernel if stride is None else stride
    if not ceil_mode:
        return conv_output_size(size, kernel, stride, padding, dilation, strict=strict)
    span = dilation * (kernel - 1) + 1
    out = math.ceil((size + 2 * padding - span) / stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_transpose_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output size of a transposed convolution: (N - 1)S - 2P + D(F - 1) + output_padding + 1."""
    _check_positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
    if output_padding >= max(stride, dilation):
        raise ConvArithmeticError(f"output_padding {output_padding} must be smaller than the stride or the "
                                  f"dilation ({max(stride, dilation)})")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ConvArithmeticError(f"padding {padding} leaves no output: (N - 1)S - 2P + D(F - 1) + 1 = {out}")
    return out


def receptive_field(layers) -> list[tuple[int, int]]:
    """Receptive field and jump after each layer of a stack; a layer is (kernel, stride) or
    (kernel, stride, dilation). Three 3x3 stride-1 layers see 7x7, as one 7x7 layer does."""
    rf, jump, out = 1, 1, []
    for layer in layers:
        kernel, stride, dilation = (*layer, 1) if len(layer) == 2 else layer
        rf += (kernel - 1) * dilation * jump
        jump *= stride
        out.append((rf, jump))
    return out


def conv_params(kernel: int, in_channels: int, out_channels: int, bias: bool = True, groups: int = 1) -> int:
    """Parameters of one convolution: F*F*(C_in/groups)*C_out (+ C_out biases). Three 3x3 layers on
    C channels without bias cost 3 * 9C^2 = 27C^2 against 49C^2 for one 7x7 layer."""
    return kernel * kernel * (in_channels // groups) * out_channels + (out_channels if bias else 0)


def _check_positive(**values) -> None:
    for key, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise ConvArithmeticError(f"{key} must be a positive integer, got {v!r}")
