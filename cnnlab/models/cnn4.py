"""A small CIFAR-10 network for the lectures' experiments."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnlabError
from ..registry import register_model
from .layers import check_input


class SmallCNN(nn.Module):
    """Krizhevsky et al.'s Fig. 1 network, as far as the paper says: four layers (three
    convolutions and a classifier), the activation under test after each convolution; 5x5
    convolutions with 2x2 max-pooling. `width` scales the channels (32, 32, 64 at width 1).

    Deviations from the paper: the paper gives no layer sizes for this network (it was a
    cuda-convnet CIFAR-10 model); these are a plausible four-layer stand-in, without its local
    response normalisation.
    """

    def __init__(self, num_classes: int = 10, activation: str = "relu", width: float = 1.0):
        super().__init__()
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}
        if activation not in acts:
            raise CnnlabError(f"activation must be one of {', '.join(acts)}, got {activation!r}")
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 32, 64))
        self.input_size = (3, 32, 32)
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 5, padding=2), acts[activation](), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), acts[activation](), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 5, padding=2), acts[activation](), nn.MaxPool2d(2))
        self.fc = nn.Linear(c3 * 4 * 4, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x, self.input_size)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.fc.in_features, num_classes)


@register_model(paper="Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep CNNs (Fig. 1)",
                year=2012, input_size=(3, 32, 32), num_classes=10)
def cnn4(*, num_classes: int = 10, **kwargs) -> SmallCNN:
    """The four-layer CIFAR-10 network of AlexNet's Fig. 1 (ReLU vs tanh), activation selectable."""
    return SmallCNN(num_classes=num_classes, **kwargs)
