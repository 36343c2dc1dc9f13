"""The multi-layer perceptron, the lectures' first network.

Rumelhart, Hinton, Williams, "Learning representations by back-propagating errors",
Nature 323, 1986.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..registry import register_model
from .layers import Classifier, Maxout, check_input, tracing

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "maxout": lambda: Maxout(2),
}


class MLP(Classifier, nn.Module):
    """Fully connected layers with a non-linearity (and optional dropout) between them.

    The input is flattened, so an MLP on 28x28 images takes (N, 1, 28, 28) or (N, 784).
    With `out_features=1` and no output non-linearity it is a regressor, e.g. the lectures'
    temperature predictor from three days' averages: `mlp(in_features=3, hidden=(8,), out_features=1)`.

    Deviations from the paper: none in kind; sizes, activation and dropout are options.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: tuple[int, ...] = (256, 128),
        num_classes: int = 10,
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.in_features = in_features
        layers: list[nn.Module] = []
        width = in_features
        pieces = 2 if activation == "maxout" else 1  # maxout: each unit is the larger of two linear ones
        for h in hidden:
            layers += [nn.Linear(width, h * pieces), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        self.hidden = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        if not tracing(x) and (x.ndim < 2 or math.prod(x.shape[1:]) != self.in_features):
            check_input(self, x, (self.in_features,))  # raises with the shapes in the message
        return self.hidden(torch.flatten(x, 1))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    paper="Rumelhart et al., Learning representations by back-propagating errors",
    year=1986,
    input_size=(1, 28, 28),
    num_classes=10,
)
def mlp(
    *,
    num_classes: int | None = None,
    out_features: int | None = None,
    in_features: int = 784,
    hidden: tuple[int, ...] = (256, 128),
    **kwargs,
) -> MLP:
    """Multi-layer perceptron: flatten, Linear-activation per hidden size, Linear output."""
    if num_classes is not None and out_features is not None and num_classes != out_features:
        raise ValueError(f"num_classes={num_classes} and out_features={out_features} disagree; give one")
    out = out_features or num_classes or 10
    return MLP(in_features=in_features, hidden=tuple(hidden), num_classes=out, **kwargs)
