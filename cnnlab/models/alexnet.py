"""AlexNet (Krizhevsky, Sutskever, Hinton 2012) and torchvision's one-tower variant.

Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012, Section 3 and Fig. 2. Krizhevsky, "One weird trick for parallelizing
convolutional neural networks", arXiv:1404.5997, 2014 (the variant torchvision implements).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import register_model
from .layers import Classifier, check_input, local_response_norm


class AlexNet(Classifier, nn.Module):
    """AlexNet as published: five convolutional and three fully connected layers.

    conv1 96@11x11/4 - ReLU - LRN - maxpool 3/2
    conv2 256@5x5 pad 2, two groups - ReLU - LRN - maxpool 3/2
    conv3 384@3x3 pad 1 (sees both towers), conv4 384@3x3 two groups, conv5 256@3x3 two groups
    maxpool 3/2 - dropout - fc6 4096 - dropout - fc7 4096 - fc8.
    LRN: k=2, n=5, alpha=1e-4, beta=0.75 in the paper's formula. 60,965,224 parameters
    for 1000 classes. The two-GPU split becomes `groups=2` in conv2, conv4 and conv5.

    Deviations from the paper:
    - Input 227x227: the paper says 224, but 11x11 stride-4 convolutions need 227 to give
      the 55x55 maps of Fig. 2.
    - `init="paper"` (default) draws weights from N(0, 0.01^2) with biases 1 in conv2, conv4,
      conv5 and the hidden fully connected layers and 0 elsewhere (Section 5).
    """

    classifier_name = "fc8"

    input_size = (3, 227, 227)

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, init: str = "paper"):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
        self.norm1 = local_response_norm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.norm2 = local_response_norm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        if init == "paper":
            self._init_paper()
        elif init != "default":
            raise ValueError(f"init must be 'paper' or 'default', got {init!r}")

    @torch.no_grad()
    def _init_paper(self) -> None:
        for m in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.fc6, self.fc7, self.fc8):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if m in (self.conv2, self.conv4, self.conv5, self.fc6, self.fc7) else 0.0)

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, self.input_size)
        x = self.pool(self.norm1(self.relu(self.conv1(x))))
        x = self.pool(self.norm2(self.relu(self.conv2(x))))
        x = self.relu(self.conv3(x))
        x = self.relu(self.conv4(x))
        return self.pool(self.relu(self.conv5(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.relu(self.fc6(self.dropout(torch.flatten(x, 1))))
        x = self.relu(self.fc7(self.dropout(x)))
        return x if pre_logits else self.fc8(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class AlexNetOWT(Classifier, nn.Module):
    """torchvision's AlexNet: the single-tower network of "One weird trick" (2014).

    64-192-384-256-256 channels, no LRN, no groups, adaptive 6x6 average pooling before the
    classifier, 61,100,840 parameters for 1000 classes. Module names follow torchvision
    (`features`, `avgpool`, `classifier`) so its state dicts load unchanged.

    Deviations from the paper (Krizhevsky 2014): the 224x224 input with padding 2 in conv1
    and the adaptive average pooling are torchvision's choices, kept for weight compatibility.
    """

    input_size = (3, 224, 224)

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        self.classifier_name = f"classifier.{len(self.classifier) - 1}"

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, (3, None, None))
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        *hidden, last = self.classifier  # called one by one: a slice would be a module FX cannot trace
        for layer in hidden:
            x = layer(x)
        return x if pre_logits else last(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    paper="Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks",
    year=2012,
    input_size=(3, 227, 227),
    num_classes=1000,
)
def alexnet(*, num_classes: int = 1000, **kwargs) -> AlexNet:
    """AlexNet as published: two-tower groups, LRN, overlapping pooling, 60,965,224 parameters."""
    return AlexNet(num_classes=num_classes, **kwargs)


@register_model(
    paper="Krizhevsky, One weird trick for parallelizing convolutional neural networks",
    year=2014,
    input_size=(3, 224, 224),
    num_classes=1000,
)
def alexnet_owt(*, num_classes: int = 1000, **kwargs) -> AlexNetOWT:
    """torchvision's AlexNet: one tower, 64-192-384-256-256 channels, no LRN."""
    return AlexNetOWT(num_classes=num_classes, **kwargs)
