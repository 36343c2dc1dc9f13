"""LeCun et al.'s stochastic diagonal Levenberg-Marquardt (1998, Appendix C), for LeNet-5: every
weight has a step size of its own, the global rate over the curvature of the loss along it,

    eps_k = lr / (mu + h_kk),

where h_kk is an estimate of the loss's second derivative in w_k, re-estimated on a few hundred
training patterns before each pass (the paper: 500, mu = 0.02).

h comes as the paper computes it: second derivatives back-propagated layer by layer like
gradients, with the off-diagonal terms dropped (the Gauss-Newton approximation of Eqs. 23-26).
For a layer a = W x + b followed by the squashing function x' = f(a):

    d2E/da_i^2 = f'(a_i)^2 d2E/dx'_i^2             d2E/dx_j^2 = sum_i w_ij^2 d2E/da_i^2
    h(w_ij)    = sum over the connections that share w_ij of x_j^2 d2E/da_i^2

starting from d2E/dF6_j^2 = 2, the curvature of the squared distance from F6 to the right RBF
code (Eq. 8; the rest of the MAP criterion only pushes the wrong codes away). Each rule is the
layer's own backward pass with its weights squared (the first) or its inputs squared (the
last), so autograd runs it for convolutions, C3's partial table and the subsampling layers alike.
A shared weight sums the second derivatives of its connections rather than squaring the sum of
their first derivatives (the exact Gauss-Newton diagonal), which is what sizes the paper's steps:
with the exact diagonal, C1's curvature is a hundred times smaller and the paper's rate diverges.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models.lenet import TANH_A, TANH_S

PATTERNS = 500  # patterns the curvature is estimated on before each pass (the paper's)


class SDLM(torch.optim.Optimizer):
    """w_k <- w_k - lr / (mu + h_kk) * dE/dw_k, with h from `estimate_curvature` (none yet: h = 0,
    plain SGD at lr / mu)."""

    def __init__(self, params, lr: float, mu: float = 0.02, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, mu=mu, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if not group["weight_decay"] else p.grad.add(p, alpha=group["weight_decay"])
                h = self.state[p].get("curvature")
                p.sub_(g / (group["mu"] + h) * group["lr"] if h is not None else g * (group["lr"] / group["mu"]))

    def estimate_curvature(self, model: nn.Module, images: Tensor) -> None:
        """h for every parameter, averaged over `images` (a few hundred training patterns)."""
        h = lenet5_curvature(model, images)
        for p in (p for g in self.param_groups for p in g["params"]):
            self.state[p]["curvature"] = h[p]


def lenet5_curvature(model: nn.Module, images: Tensor) -> dict[Tensor, Tensor]:
    """The paper's diagonal second derivatives of LeNet-5's weights, averaged over `images`."""
    from torch.func import functional_call

    layers = [model.c1, model.s2, model.c3, model.s4, model.c5, model.f6]
    inputs, pre = [], []
    with torch.no_grad():
        x = images
        for layer in layers:
            x = x.flatten(1) if layer is model.f6 else x
            inputs.append(x)
            pre.append(layer(x))
            x = model.act(pre[-1])
    curvature = {}
    s = torch.full_like(x, 2.0)  # d2E/dF6^2 of the squared distance to the code
    for layer, x, a in reversed(list(zip(layers, inputs, pre))):
        s = s.view_as(a) * slope(a).square()  # through the squashing function to the sums
        own = dict(layer.named_parameters(recurse=False))
        probe = {n: p.detach().clone().requires_grad_() for n, p in own.items()}
        out = functional_call(layer, probe, (x.square(),))  # inputs squared: h of the weights
        for p, h in zip(own.values(), torch.autograd.grad(out, list(probe.values()), s)):
            curvature[p] = h / len(images)
        if layer is not model.c1:
            x = x.detach().requires_grad_()
            squared = {n: p.detach().square() for n, p in own.items()}
            out = functional_call(layer, squared, (x,))  # weights squared: d2E/dx^2 of the inputs
            (s,) = torch.autograd.grad(out, x, s)
    return curvature


def slope(a: Tensor) -> Tensor:
    """f'(a) of the paper's squashing function f(a) = A tanh(S a)."""
    return TANH_A * TANH_S * (1 - torch.tanh(TANH_S * a).square())
