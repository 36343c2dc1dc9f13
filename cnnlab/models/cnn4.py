"""A small CIFAR-10 network for the lectures' experiments."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnlabError
from ..registry import register_model
from .layers import Classifier, Maxout, check_input

ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu", "maxout")


def activation_layer(name: str) -> nn.Module:
    """The named non-linearity; "maxout" takes the max over channel pairs (its input has 2x the channels)."""
    layers = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "leaky_relu": nn.LeakyReLU,
        "maxout": lambda: Maxout(2),
    }
    if name not in layers:
        raise CnnlabError(f"activation must be one of {', '.join(layers)}, got {name!r}")
    return layers[name]()


class SmallCNN(Classifier, nn.Module):
    """Krizhevsky et al.'s Fig. 1 network, as far as the paper says: four layers (three
    convolutions and a classifier), the activation under test after each convolution; 5x5
    convolutions with 2x2 max-pooling. `width` scales the channels (32, 32, 64 at width 1).

    Options for the other experiments (all off by default): `batchnorm` puts batch normalisation
    between each convolution and its activation (the convolutions then have no bias); `hidden`
    adds a fully connected hidden layer of that size before the classifier, with dropout
    `dropout` in front of both fully connected layers (AlexNet's placement); "maxout" doubles each
    convolution's outputs and keeps the larger of each pair.

    Deviations from the paper: the paper gives no layer sizes for this network (it was a
    cuda-convnet CIFAR-10 model); these are a plausible four-layer stand-in, without its local
    response normalisation.
    """

    def __init__(
        self,
        num_classes: int = 10,
        activation: str = "relu",
        width: float = 1.0,
        batchnorm: bool = False,
        hidden: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise CnnlabError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        pieces = 2 if activation == "maxout" else 1
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 32, 64))
        self.input_size = (3, 32, 32)
        layers: list[nn.Module] = []
        for cin, cout in ((3, c1), (c1, c2), (c2, c3)):
            layers.append(nn.Conv2d(cin, cout * pieces, 5, padding=2, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(cout * pieces))
            layers += [activation_layer(activation), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = []
        width_in = c3 * 4 * 4
        if hidden:
            head += [nn.Dropout(dropout), nn.Linear(width_in, hidden * pieces), activation_layer(activation)]
            width_in = hidden
        self.head = nn.Sequential(*head, nn.Dropout(dropout)) if (hidden or dropout) else nn.Identity()
        self.fc = nn.Linear(width_in, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x, self.input_size)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head(torch.flatten(x, 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    paper="Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep CNNs (Fig. 1)",
    year=2012,
    input_size=(3, 32, 32),
    num_classes=10,
)
def cnn4(*, num_classes: int = 10, **kwargs) -> SmallCNN:
    """The four-layer CIFAR-10 network of AlexNet's Fig. 1 (ReLU vs tanh), activation selectable."""
    return SmallCNN(num_classes=num_classes, **kwargs)
