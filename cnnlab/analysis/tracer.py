"""The analyser's eyes: a TorchFunctionMode that sees every tensor operation of one forward pass
on the meta device, with forward hooks marking the leaf modules, and works out per operation
its multiply-adds and how it grows the receptive field and the jump."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from . import fields
from .result import KINDS, LayerRow

_CONV = {"conv1d", "conv2d", "conv3d"}
_CONV_T = {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
# fully connected: every output value mixes every input value, so its field is the whole input
_FC = {
    "linear",
    "matmul",
    "mm",
    "bmm",
    "addmm",
    "baddbmm",
    "einsum",
    "cdist",
    "bilinear",
    "scaled_dot_product_attention",
    "multi_head_attention_forward",
}
_NORM = {"batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm"}
_POOL = {
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "max_pool2d_with_indices",
}
_REDUCTIONS = {
    "mean",
    "sum",
    "amax",
    "amin",
    "max",
    "min",
    "std",
    "var",
    "norm",
    "logsumexp",
    "prod",
    "median",
    "nansum",
    "nanmean",
    "argmax",
    "argmin",
    "std_mean",
    "var_mean",
}
_RECURRENT = {"lstm", "gru", "rnn_tanh", "rnn_relu"}
_SAME_SHAPE = {"batch_norm", "layer_norm", "group_norm", "instance_norm"}
# functional ops that only re-describe memory: tracked for receptive fields, but not listed as rows
_VIEWS = {
    "view",
    "reshape",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "t",
    "expand",
    "contiguous",
    "detach",
    "getitem",
    "narrow",
    "select",
    "split",
    "chunk",
    "unbind",
}


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


class Tracer(TorchFunctionMode):
    """Sees every tensor operation; attributes MACs to the innermost leaf module and records
    functional ops that happen outside leaf modules. Tracks receptive field and jump per tensor."""

    def __init__(self, model: nn.Module, ndim: int):
        super().__init__()
        self.ndim = ndim  # spatial axes
        self.info: dict[int, tuple] = {}  # id(tensor) -> (rf, jump, depth); rf None: the whole input
        self.keep: list[Tensor] = []  # keeps tracked tensors alive so their ids stay unique
        self.stack: list[nn.Module] = []  # modules being executed
        self.leaf: dict | None = None  # accumulator of the innermost leaf module call
        self.rows: list[LayerRow] = []
        self.paused = False
        self.prefix: dict[nn.Module, str] = {m: n for n, m in model.named_modules()}
        # one row per leaf module; nn.MultiheadAttention is one too: its forward is a single functional
        # call that uses out_proj's weights without calling out_proj
        self.composite = {m for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
        self.leaves = {m for m in model.modules() if not any(True for _ in m.children())} | self.composite
        self.seen_params: set[int] = set()  # the parameters the forward pass reached, by id

    def hooks(self, model: nn.Module) -> list:
        """Forward hooks on every module of `model` that mark where each call starts and ends."""
        handles = []
        for m in model.modules():
            handles.append(m.register_forward_pre_hook(self.enter))
            handles.append(m.register_forward_hook(self.leave))
        return handles

    def enter(self, module: nn.Module, args) -> None:
        self.stack.append(module)
        if module in self.leaves:
            self.leaf = {"macs": 0, "kind": None, "geometry": None, "inputs": list(flat(args))}

    def leave(self, module: nn.Module, args, output) -> None:
        """A leaf module's call ends: its row, with the operations seen inside it."""
        self.paused = True
        try:
            self.stack.pop()
            if module not in self.leaves:
                return
            acc, self.leaf = self.leaf, None
            tensors = [t for t in flat([output]) if isinstance(t, Tensor)]
            if not tensors:
                return
            own = [p for p in module.parameters(recurse=module in self.composite)]
            new = [p for p in own if id(p) not in self.seen_params]
            self.seen_params.update(id(p) for p in own)
            macs = acc["macs"]
            if hasattr(module, "count_macs"):
                macs = module.count_macs(tensors[0])
            elif isinstance(module, nn.RNNBase):
                macs = rnn_macs(module, next(t for t in flat(acc["inputs"]) if isinstance(t, Tensor)))
            row = LayerRow(
                name=self.prefix.get(module, ""),
                type=type(module).__name__,
                kind=acc["kind"] or module_kind(module),
                output_shape=tuple(tensors[0].shape),
                params=sum(p.numel() for p in new),
                trainable_params=sum(p.numel() for p in new if p.requires_grad),
                macs=macs,
            )
            inputs = [t for t in acc["inputs"] if isinstance(t, Tensor)]
            self._fill_output(row, output, inputs)
            set_geometry(row, acc["geometry"])
            self.rows.append(row)
        finally:
            self.paused = False

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
        inputs = [a for a in flat(args) if isinstance(a, Tensor) and id(a) in self.info]
        inputs += [a for a in flat(kwargs.values()) if isinstance(a, Tensor) and id(a) in self.info]
        if not inputs:
            return out  # not on the data path (e.g. weight arithmetic)
        rf, jump, macs, geometry = self._effect(name, args, kwargs, inputs, out)
        depth = max(self.info[id(t)][2] for t in inputs) + (name in _CONV or name in _CONV_T or name in _FC)
        for t in flat([out]):
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
            row = LayerRow(
                name=f"{owner}.{name}" if owner else name,
                type=name,
                kind=kind or "other",
                output_shape=tuple(out.shape),
                macs=macs,
            )
            self._fill_output(row, out, inputs)
            set_geometry(row, geometry)
            self.rows.append(row)
        return out

    def _fill_output(self, row: LayerRow, out, inputs) -> None:
        tensors = [t for t in flat([out]) if isinstance(t, Tensor)]
        row.activations = sum(t.numel() for t in tensors)
        in_storages = {t.untyped_storage()._cdata for t in inputs}
        row.activation_bytes = sum(
            t.numel() * t.element_size() for t in tensors if t.untyped_storage()._cdata not in in_storages
        )
        if tensors and id(tensors[0]) in self.info:
            rf, jump, _ = self.info[id(tensors[0])]
            row.receptive_field = None if rf is None else tuple(None if r is None else int(r) for r in rf)
            row.jump = None if jump is None else tuple(jump)

    def _effect(self, name, args, kwargs, inputs, out):
        """Receptive field, jump, MACs and geometry of one operation."""
        op = Op(name, args, kwargs, inputs[0], out)
        field = fields.merge([self.info[id(t)][:2] for t in inputs], self.ndim)
        if name in _CONV or name in _CONV_T:
            return _conv(op, field)
        if name in _FC:  # every output mixes every input: the whole input
            return None, None, _dense_macs(op), None
        if name in _POOL and "adaptive" not in name:
            return _pool(op, field)
        if name in _POOL or name == "interpolate":
            return (*_resample(op, field, self.ndim), 0, None)
        if name in _REDUCTIONS:
            return (*fields.reduce(field, _reduced_axes(op, self.ndim)), 0, None)
        if name in _RECURRENT:  # every step's state carries all the steps before it
            return None, None, 0, None
        return (*field, 0, None)


class Op:
    """One tensor operation as the tracer sees it: its name, arguments, first input and output."""

    def __init__(self, name: str, args: tuple, kwargs: dict, x: Tensor, out):
        self.name, self.args, self.kwargs, self.x, self.out = name, args, kwargs, x, out

    def arg(self, i: int, key: str, default=None):
        return self.args[i] if len(self.args) > i else self.kwargs.get(key, default)


def _conv(op: Op, field):
    """Convolution and transposed convolution: MACs, field and geometry from the weight's shape."""
    weight = op.arg(1, "weight")
    n = weight.ndim - 2
    k = tuple(weight.shape[2:])
    stride, padding = _pair(op.arg(3, "stride", 1), n), op.arg(4, "padding", 0)
    if op.name in _CONV:
        dilation, groups = _pair(op.arg(5, "dilation", 1), n), op.arg(6, "groups", 1)
        macs = op.out.numel() * weight.shape[1] * math.prod(k)
        rf, jump = fields.grow(field, k, stride, dilation)
    else:  # conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation)
        groups, dilation = op.arg(6, "groups", 1), _pair(op.arg(7, "dilation", 1), n)
        macs = op.x.numel() * weight.shape[1] * math.prod(k)
        rf, jump = fields.transposed(field, k, stride, dilation)
    padding = padding if isinstance(padding, str) else _pair(padding, n)
    return rf, jump, macs, dict(kernel=k, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _dense_macs(op: Op) -> int:
    """Multiply-adds of the operations whose every output mixes every input."""
    name, args = op.name, op.args
    if name in ("linear", "bilinear"):
        return op.out.numel() * op.arg(1, "weight").shape[-1]
    if name in ("matmul", "mm", "bmm", "cdist"):
        return op.out.numel() * args[0].shape[-1]
    if name in ("addmm", "baddbmm"):
        return op.out.numel() * args[1].shape[-1]
    if name == "einsum":  # a contraction: every combination of the indices is one multiply-add
        operands = [a for a in flat(args[1:]) if isinstance(a, Tensor)]
        sizes = {}
        for spec, t in zip(args[0].replace(" ", "").split("->")[0].split(","), operands):
            if "..." not in spec:
                sizes.update(zip(spec, t.shape))
        return math.prod(sizes.values()) if len(operands) == 2 and sizes else 0
    if name == "scaled_dot_product_attention":  # q (..., L, E), k (..., S, E), v (..., S, Ev)
        q, k, v = args[:3]
        return math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    return _mha_macs(args, op.kwargs)  # multi_head_attention_forward


def _pool(op: Op, field):
    """Max and average pooling: a window of kernel_size (stride: the kernel size by default)."""
    n = op.x.ndim - 2
    k = _pair(op.arg(1, "kernel_size", 1), n)
    stride = op.arg(2, "stride")
    stride = k if stride in (None, [], ()) else _pair(stride, n)
    padding = _pair(op.arg(3, "padding", 0), n)
    dilation = _pair(op.arg(4, "dilation", 1), n) if "max" in op.name else (1,) * n
    rf, jump = fields.grow(field, k, stride, dilation)
    return rf, jump, 0, dict(kernel=k, stride=stride, padding=padding, dilation=dilation)


def _resample(op: Op, field, ndim: int):
    """Adaptive pooling and interpolation: to another size, each output from a few neighbouring
    inputs; pooling to a single value per map sees the whole input."""
    sizes_in, sizes_out = tuple(op.x.shape[2:]), tuple(op.out.shape[2:])
    if len(sizes_in) != ndim or len(sizes_out) != ndim:
        return field
    if "adaptive" in op.name:
        if all(o == 1 for o in sizes_out) and any(i > 1 for i in sizes_in):
            return None, None
        taps = [fields.adaptive_window(i, o) for i, o in zip(sizes_in, sizes_out)]
    else:
        mode, antialias = op.arg(3, "mode", "nearest"), op.arg(6, "antialias", False)
        taps = [fields.interpolation_taps(mode, i, o, antialias) for i, o in zip(sizes_in, sizes_out)]
    return fields.resample(field, taps, sizes_in, sizes_out)


def _reduced_axes(op: Op, ndim: int) -> set[int]:
    """The spatial axes (0 for H, ...) a reduction of an (N, C, *spatial) tensor runs over (all
    of them when it names none); none where the tensor has another layout or the call is
    elementwise (torch.max(a, b))."""
    dims = op.arg(2 if op.name == "norm" else 1, "dim")
    if isinstance(dims, Tensor) or op.x.ndim != ndim + 2:
        return set()
    if dims is None:
        return set(range(ndim))
    dims = {d % op.x.ndim for d in (dims if isinstance(dims, (tuple, list)) else (dims,))}
    return {d - 2 for d in dims if d >= 2}


def _mha_macs(args, kwargs) -> int:
    """nn.MultiheadAttention (F.multi_head_attention_forward, sequence first): the query, key and
    value projections, the query-key products, the weighted sum of values, the output projection."""
    q, k, v = args[:3]
    e = args[3] if len(args) > 3 else kwargs["embed_dim_to_check"]
    batch = q.shape[1] if q.ndim == 3 else 1
    length, source = q.shape[0], k.shape[0]
    projections = batch * (length * e * q.shape[-1] + source * e * k.shape[-1] + source * e * v.shape[-1])
    return projections + 2 * batch * length * source * e + batch * length * e * e


def rnn_macs(rnn: nn.RNNBase, x: Tensor) -> int:
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


def set_geometry(row: LayerRow, geometry: dict | None) -> None:
    if geometry:
        for key, value in geometry.items():
            setattr(row, key, value)


def flat(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from flat(item)
        else:
            yield item


def module_kind(module: nn.Module) -> str:
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
