"""A PyTorch model as a NumPy network and back. `from_torch` traces the model with torch.fx (a
residual block kept whole) and turns each call, in order, into its NumPy layer; the model must be
a chain of the layers cnnlab.scratch has (`mlp`, `lenet5_modern`, `cnn4`, the CIFAR ResNets and
plain nets). `to_torch` writes the network's weights and statistics back into the model."""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import CnnlabError
from ..models.lenet import TANH_A, TANH_S, PartialConv2d, ScaledTanh
from ..models.lenet import Subsampling as TorchSubsampling
from ..models.resnet import BasicBlock as TorchBasicBlock
from ..models.resnet import ShortcutA as TorchShortcutA
from .activations import Dropout, Flatten, LeakyReLU, ReLU, Sigmoid, Tanh
from .blocks import BasicBlock, Sequential, ShortcutA
from .layers import AvgPool2d, BatchNorm, Conv2d, GlobalAvgPool, Layer, Linear, MaxPool2d, Subsampling

LEAVES = (TorchBasicBlock, TorchShortcutA, TorchSubsampling, ScaledTanh, PartialConv2d)


class Network(Sequential):
    """A NumPy network: its layers in order, with the names of the model's modules."""

    def parameters(self):
        """(the model's name of the parameter, its layer, its key) for every parameter."""
        for name, layer in self.named():
            for key in layer.params:
                yield f"{name}.{key}", layer, key

    def state(self) -> dict[str, np.ndarray]:
        """Every parameter and statistic by the model's state-dict names."""
        return {f"{name}.{k}": v for name, layer in self.named() for k, v in {**layer.params, **layer.buffers}.items()}


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, name: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, name)


def from_torch(model: nn.Module, share: bool = False, dtype=np.float64) -> Network:
    """The model as a NumPy network with its weights: copies in `dtype` (float64 by default, for
    exact checks), or with `share` views of the model's own CPU tensors (training in place)."""
    arrays = _Arrays(share, dtype)
    graph = _Tracer().trace(model)
    modules = dict(model.named_modules())
    layers, last = [], None
    for node in graph.nodes:
        if node.op == "placeholder":
            last = node
            continue
        if node.op == "output":
            break
        inputs = [a for a in node.args if isinstance(a, fx.Node)]
        if inputs != [last]:
            raise CnnlabError(
                f"{getattr(model, 'model_name', type(model).__name__)} is not a chain of layers at {node.name} "
                "(cnnlab.scratch runs mlp, lenet5_modern, cnn4 and the CIFAR ResNets and plain nets)"
            )
        layer = _layer(node, modules, arrays)
        if layer is not None:
            layers.append((str(node.target) if node.op == "call_module" else node.name, layer))
        last = node
    return Network(layers)


def to_torch(net: Network, model: nn.Module) -> nn.Module:
    """Write the network's parameters and statistics into the model (same names); returns it."""
    state = model.state_dict()
    with torch.no_grad():
        for name, value in net.state().items():
            if name not in state:
                raise CnnlabError(f"{type(model).__name__} has no {name}: not the model this network came from")
            target = state[name]
            target.copy_(torch.as_tensor(np.asarray(value)).to(target.dtype).reshape(target.shape))
    return model


class _Arrays:
    def __init__(self, share: bool, dtype):
        self.share, self.dtype = share, dtype

    def __call__(self, t: torch.Tensor | None):
        if t is None:
            return None
        if self.share:
            if t.device.type != "cpu":
                raise CnnlabError("the NumPy engine runs on the CPU: the model's tensors must be on the CPU")
            return t.detach().numpy()  # a view: the same memory
        return t.detach().cpu().numpy().astype(self.dtype if t.is_floating_point() else t.numpy().dtype)


def _single(v, what: str) -> int:
    values = v if isinstance(v, tuple) else (v, v)
    if isinstance(values, str) or values[0] != values[1]:
        raise CnnlabError(f"cnnlab.scratch has square {what} only, got {v}")
    return values[0]


def _layer(node: fx.Node, modules: dict, a: _Arrays) -> Layer | None:
    if node.op == "call_function":
        if node.target is torch.flatten and (node.args[1:] == (1,) or node.kwargs.get("start_dim") == 1):
            return Flatten()
        if node.target in (F.relu, torch.relu):
            return ReLU()
        if node.target in (operator.getitem,):
            raise CnnlabError("cnnlab.scratch does not index tensors inside a model")
        raise CnnlabError(f"cnnlab.scratch has no NumPy layer for {getattr(node.target, '__name__', node.target)}")
    if node.op != "call_module":
        raise CnnlabError(f"cnnlab.scratch has no NumPy layer for the {node.op} {node.target}")
    return module_layer(modules[node.target], a)


def module_layer(m: nn.Module, a: _Arrays) -> Layer | None:
    """The NumPy layer of one module (None for an identity)."""
    if isinstance(m, nn.Identity):
        return None
    if isinstance(m, nn.Conv2d) and m.padding_mode == "zeros" and not isinstance(m.padding, str):
        return Conv2d(
            a(m.weight),
            a(m.bias),
            _single(m.stride, "strides"),
            _single(m.padding, "paddings"),
            _single(m.dilation, "dilations"),
            m.groups,
        )
    if isinstance(m, nn.Linear):
        return Linear(a(m.weight), a(m.bias))
    if isinstance(m, nn.MaxPool2d) and not m.ceil_mode and not m.return_indices:
        k = _single(m.kernel_size, "pooling windows")
        return MaxPool2d(
            k, _single(m.stride or k, "strides"), _single(m.padding, "paddings"), _single(m.dilation, "dilations")
        )
    if isinstance(m, nn.AvgPool2d) and not m.ceil_mode and m.count_include_pad and m.divisor_override is None:
        k = _single(m.kernel_size, "pooling windows")
        return AvgPool2d(k, _single(m.stride or k, "strides"), _single(m.padding, "paddings"))
    if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
        return GlobalAvgPool()
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine and m.track_running_stats and m.momentum:
        return BatchNorm(
            a(m.weight), a(m.bias), a(m.running_mean), a(m.running_var), m.eps, m.momentum, a(m.num_batches_tracked)
        )
    simple = {nn.ReLU: ReLU, nn.Tanh: Tanh, nn.Sigmoid: Sigmoid, nn.Flatten: Flatten}
    if type(m) in simple and (not isinstance(m, nn.Flatten) or (m.start_dim, m.end_dim) == (1, -1)):
        return simple[type(m)]()
    if isinstance(m, nn.LeakyReLU):
        return LeakyReLU(m.negative_slope)
    if isinstance(m, ScaledTanh):
        return Tanh(TANH_A, TANH_S)
    if isinstance(m, nn.Dropout):
        return Dropout(m.p)
    if isinstance(m, TorchSubsampling):
        return Subsampling(a(m.weight), a(m.bias))
    if isinstance(m, TorchShortcutA):
        return ShortcutA(m.out_channels, m.stride)
    if isinstance(m, TorchBasicBlock):
        return _block(m, a)
    raise CnnlabError(
        f"cnnlab.scratch has no NumPy layer for {type(m).__name__} (it runs mlp, lenet5_modern, cnn4 and the CIFAR "
        "ResNets and plain nets)"
    )


def _block(m: TorchBasicBlock, a: _Arrays) -> BasicBlock:
    body = Sequential(
        [(n, module_layer(getattr(m, n), a)) for n in ("conv1", "bn1")]
        + [("relu", ReLU())]
        + [(n, module_layer(getattr(m, n), a)) for n in ("conv2", "bn2")]
    )
    down = m.downsample
    if down is None:
        shortcut = None
    elif isinstance(down, nn.Sequential):
        shortcut = Sequential([(n, module_layer(c, a)) for n, c in down.named_children()])
    else:
        shortcut = module_layer(down, a)
    return BasicBlock(body, shortcut, m.shortcut)
