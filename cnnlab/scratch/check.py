"""Is the backward pass right? Two independent answers: PyTorch's autograd on the same model,
weights and batch (float64), and finite differences of the NumPy loss itself, (L(w + h) − L(w − h))
/ 2h, at sampled coordinates of every parameter and of the input. `walk` is what `cnnlab backprop`
prints: each layer's forward shape, its backward rule and its gradient's norm."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .activations import Dropout, LeakyReLU, ReLU
from .blocks import BasicBlock
from .convert import Network, from_torch
from .layers import MaxPool2d
from .losses import softmax_cross_entropy

AUTOGRAD_TOLERANCE = 1e-10  # relative to the largest value of the gradient
FINITE_TOLERANCE = 1e-7


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |b|: the difference on the scale of the gradient itself."""
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


def numpy_pass(net: Network, x: np.ndarray, y: np.ndarray, smoothing: float = 0.0, train: bool = True):
    """Forward, loss and backward of the NumPy network: (loss, dL/dx, {name: dL/dw})."""
    out = net.forward(x, train)
    loss, dout = softmax_cross_entropy(out, y, smoothing)
    dx = net.backward(dout)
    return loss, dx, {name: layer.grads[key] for name, layer, key in net.parameters()}


def autograd_pass(model: nn.Module, x: np.ndarray, y: np.ndarray, smoothing: float = 0.0, train: bool = True):
    """The same with PyTorch's autograd."""
    model.train(train)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()  # the checks run without dropout masks (dropout's own rule is checked alone)
    xt = torch.tensor(x, requires_grad=True)
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(xt), torch.tensor(y), label_smoothing=smoothing)
    loss.backward()
    return loss.item(), xt.grad.numpy(), {n: p.grad.numpy() for n, p in model.named_parameters()}


def finite_differences(net: Network, x, y, samples: int = 6, h: float = 1e-5, seed: int = 0) -> dict[str, float]:
    """Per parameter (and "input"): the relative difference between the NumPy gradient and central
    differences of the NumPy loss at `samples` random coordinates."""
    rng = np.random.default_rng(seed)
    _, dx, grads = numpy_pass(net, x, y)
    base = pattern(net)
    targets = [("input", x, dx)] + [(n, layer.params[k], grads[n]) for n, layer, k in net.parameters()]
    out = {}
    for name, array, grad in targets:
        flat, grad = array.reshape(-1), grad.reshape(-1).copy()
        worst = 0.0
        for j in rng.permutation(flat.size)[: 4 * samples]:
            estimate = _central(net, x, y, flat, j, h, base)
            if estimate is None:  # a kink between w − h and w + h: no derivative to estimate there
                continue
            worst = max(worst, abs(estimate - grad[j]))
            samples -= 1
            if not samples:
                break
        out[name] = float(worst / max(np.abs(grad).max(), 1e-12))
    return out


def _central(net: Network, x, y, flat: np.ndarray, j: int, h: float, base: list) -> float | None:
    """(L(w + h) − L(w − h)) / 2h at coordinate j, or None where a ReLU or a max-pool switched."""
    keep, losses = flat[j], []
    for step in (h, -h):
        flat[j] = keep + step
        losses.append(softmax_cross_entropy(net.forward(x, True), y)[0])
        if not all(np.array_equal(a, b) for a, b in zip(pattern(net), base)):
            flat[j] = keep
            return None
    flat[j] = keep
    return (losses[0] - losses[1]) / (2 * h)


def pattern(net: Network) -> list[np.ndarray]:
    """Which units the last forward pass switched on, and which inputs each max-pool took."""
    seen = []
    for _, layer in net.named():
        for part in (layer, getattr(layer, "relu", None)):
            if isinstance(part, (ReLU, LeakyReLU)):
                seen.append(part.on)
            elif isinstance(part, MaxPool2d):
                seen.append(part.arg)
    return seen


@dataclass
class Walk:
    """What one batch through a network shows, layer by layer; with checks, the differences."""

    rows: list[dict] = field(default_factory=list)  # layer, shape, rule, grad norm
    loss: float = 0.0
    autograd: dict[str, float] = field(default_factory=dict)
    finite: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(v < AUTOGRAD_TOLERANCE for v in self.autograd.values()) and all(
            v < FINITE_TOLERANCE for v in self.finite.values()
        )


def walk(model: nn.Module, input_size: tuple, batch: int = 4, seed: int = 0, check: bool = False) -> Walk:
    """One batch of random inputs and labels through the model's NumPy network in float64, in
    training mode (batch statistics, no dropout mask): the rows of the walk-through, and with
    `check` the differences from autograd and from finite differences."""
    model = copy.deepcopy(model).double()
    net = from_torch(model)
    with torch.no_grad():  # an input of the wrong size is named by the model's own check
        model.eval()(torch.zeros((1, *input_size), dtype=torch.float64))
    for _, layer in net.named():
        if isinstance(layer, Dropout):
            layer.p = 0.0
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *input_size))
    classes = model.num_classes if hasattr(model, "num_classes") else 10
    y = rng.integers(0, classes, batch)
    result = Walk()
    shapes = []  # the output shape of each call, in order (a module may be called twice)
    originals = [layer.forward for _, layer in net.layers]
    for _, layer in net.layers:
        layer.forward = _recording(layer.forward, shapes)
    try:
        result.loss, dx, grads = numpy_pass(net, x, y)
    finally:
        for (_, layer), forward in zip(net.layers, originals):
            layer.forward = forward
    for (name, layer), shape in zip(net.layers, shapes):
        norms = [f"{np.linalg.norm(grads[f'{name}.{k}']):.2e}" for k in layer.params]
        if isinstance(layer, BasicBlock):  # the gradient reaching x along each path
            norms = [f"dX: F {np.linalg.norm(layer.branch_grad):.2e}"]
            if layer.skip_grad is not None:
                norms.append(f"skip {np.linalg.norm(layer.skip_grad):.2e}")
        result.rows.append({"layer": name, "what": layer.describe(), "shape": shape, "rule": layer.rule, "grad": norms})
    if check:
        _, tdx, tgrads = autograd_pass(model, x, y)
        result.autograd = {"input": relative(dx, tdx), **{n: relative(g, tgrads[n]) for n, g in grads.items()}}
        result.finite = finite_differences(net, x, y, seed=seed)
    return result


def _recording(forward, shapes: list):
    def run(x, train=True):
        y = forward(x, train)
        shapes.append(tuple(y.shape))
        return y

    return run
