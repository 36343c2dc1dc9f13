"""The NumPy engine of `cnnlab train --engine numpy`: the trainer's own loop (data, recipe,
schedule, progress, checkpoints, run folder) with the forward pass, the loss's gradient, the
backward pass and the optimiser step done by cnnlab.scratch in NumPy.

The model stays a PyTorch module whose tensors the NumPy network shares (no copies), so its
checkpoints, model.safetensors and `cnnlab.load_model` are those of any run. PyTorch only passes
arrays between the trainer and NumPy: `NumpyModel.forward` hands the batch to the network, and
the autograd function's backward calls the network's backward, which fills the weights' .grad
that the NumPy optimiser then reads."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import CnnlabError
from .activations import Dropout
from .convert import from_torch
from .layers import BatchNorm
from .losses import mean_squared_error, softmax_cross_entropy
from .optim import adam_step, sgd_step


class NumpyModel(nn.Module):
    """`model`'s forward and backward passes in NumPy (float32, in place in its tensors)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in model.parameters()):
            raise CnnlabError("the NumPy engine trains float32 weights on the CPU (--device cpu)")
        self.model = model
        self.net = from_torch(model, share=True)
        modules = dict(model.named_modules())
        for name, layer in self.net.named():
            if isinstance(layer, (BatchNorm, Dropout)):  # each in its module's mode (frozen layers: eval)
                layer.follows = modules[name]
            if isinstance(layer, Dropout):  # masks from the run's own random numbers, as nn.Dropout's
                layer.draw = lambda shape: torch.rand(shape).numpy()
        named = dict(model.named_parameters())
        self.order = [named[name] for name, _, _ in self.net.parameters()]

    def forward(self, x: Tensor) -> Tensor:
        return _Pass.apply(x, self, *self.order)


class _Pass(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, owner: NumpyModel, *weights: Tensor) -> Tensor:
        ctx.owner = owner
        y = owner.net.forward(x.detach().contiguous().numpy(), owner.model.training)
        return torch.from_numpy(np.ascontiguousarray(y))

    @staticmethod
    def backward(ctx, dy: Tensor):
        net, need_dx = ctx.owner.net, ctx.needs_input_grad[0]
        dx = net.backward(dy.contiguous().numpy(), need_dx)
        grads = [torch.from_numpy(np.ascontiguousarray(layer.grads[key])) for _, layer, key in net.parameters()]
        return (torch.from_numpy(np.ascontiguousarray(dx)) if need_dx else None, None, *grads)


class _Loss(torch.autograd.Function):
    """The loss and its gradient from cnnlab.scratch: softmax cross-entropy (p − q) / N, or the
    squared error's 2 (ŷ − y) / M."""

    @staticmethod
    def forward(ctx, out: Tensor, y: Tensor, smoothing: float) -> Tensor:
        if y.is_floating_point():
            loss, grad = mean_squared_error(out.detach().numpy(), y.numpy())
        else:
            loss, grad = softmax_cross_entropy(out.detach().numpy(), y.numpy(), smoothing)
        ctx.grad = torch.from_numpy(np.ascontiguousarray(grad, dtype=np.float32))
        return torch.tensor(loss, dtype=torch.float32)

    @staticmethod
    def backward(ctx, g: Tensor):
        return ctx.grad * g, None, None


def numpy_loss(out: Tensor, y: Tensor, label_smoothing: float) -> Tensor:
    """The trainer's loss, computed in NumPy."""
    return _Loss.apply(out, y, label_smoothing)


def _with_grads(opt: torch.optim.Optimizer):
    """(group, weights, gradient, state) as NumPy views, for every parameter with a gradient."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                yield group, p.detach().numpy(), p.grad.numpy(), opt.state[p], p


class NumpySGD(torch.optim.SGD):
    """PyTorch's SGD (momentum, Nesterov, L2 weight decay) with the step done by `sgd_step`."""

    @torch.no_grad()
    def step(self, closure=None):
        for group, w, g, state, p in _with_grads(self):
            first = "momentum_buffer" not in state
            if first:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"].numpy()
            sgd_step(w, g, buf, group["lr"], group["momentum"], group["weight_decay"], group["nesterov"], first)


class NumpyAdam(torch.optim.Adam):
    """PyTorch's Adam, or AdamW with `decoupled`, with the step done by `adam_step`."""

    def __init__(self, params, decoupled: bool = False, **kwargs):
        super().__init__(params, **kwargs)
        self.decoupled = decoupled

    @torch.no_grad()
    def step(self, closure=None):
        for group, w, g, state, p in _with_grads(self):
            if not state:
                state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            state["step"] += 1
            m, v = state["exp_avg"].numpy(), state["exp_avg_sq"].numpy()
            t, lr, wd = int(state["step"]), group["lr"], group["weight_decay"]
            adam_step(w, g, m, v, t, lr, group["betas"], group["eps"], wd, self.decoupled)


OPTIMIZERS = ("sgd", "adam", "adamw")


def numpy_optimizer(name: str, groups: list[dict], lr: float, momentum: float, nesterov: bool, weight_decay: float):
    """The NumPy engine's optimiser by the trainer's name for it."""
    if name == "sgd":
        return NumpySGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0, weight_decay=weight_decay)
    if name in ("adam", "adamw"):
        return NumpyAdam(groups, decoupled=name == "adamw", lr=lr, weight_decay=weight_decay)
    raise CnnlabError(f"the NumPy engine has the optimisers {', '.join(OPTIMIZERS)}, not {name}")
