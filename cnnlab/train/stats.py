"""What happens inside a network, layer by layer: activations and gradients on one batch, to see
vanishing gradients and dead units."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..models.adapt import leaves as leaf_modules

_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)


def layer_statistics(model: nn.Module, x: Tensor, y: Tensor) -> list[dict]:
    """Per leaf layer on one batch (eval mode, so no statistics are updated): the output's mean
    and std, the fraction of ReLU outputs that are exactly zero ("dead" for this batch), and the
    norm of the gradient reaching the layer's weights; vanishing gradients and dead units show here."""
    was_training = model.training
    model.eval()
    rows, hooks = [], []
    leaves = leaf_modules(model)

    def record(name, module):
        def hook(mod, inputs, out):
            if isinstance(out, Tensor) and out.is_floating_point():
                o = out.detach().float()
                rows.append(
                    {
                        "layer": name,
                        "type": type(mod).__name__,
                        "out_mean": o.mean().item(),
                        "out_std": o.std().item() if o.numel() > 1 else 0.0,
                        "dead_fraction": (o == 0).float().mean().item() if isinstance(mod, _RELU_LIKE) else None,
                    }
                )

        return hook

    for name, module in leaves:
        hooks.append(module.register_forward_hook(record(name, module)))
    try:
        model.zero_grad(set_to_none=True)
        out = model(x)
        F.cross_entropy(out[0] if isinstance(out, tuple) else out, y).backward()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    modules = dict(leaves)
    for row in rows:
        weight = getattr(modules[row["layer"]], "weight", None)
        grad = weight.grad if isinstance(weight, Tensor) else None
        row["grad_norm"] = grad.norm().item() if grad is not None else None
        row["weight_std"] = (
            weight.detach().float().std().item() if isinstance(weight, Tensor) and weight.numel() > 1 else None
        )
    model.zero_grad(set_to_none=True)
    return rows
