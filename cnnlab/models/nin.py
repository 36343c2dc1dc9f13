"""Network in Network (Lin, Chen, Yan 2013).

Lin, Chen, Yan, "Network In Network", ICLR 2014 (arXiv:1312.4400), Sections 3 and 4.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import register_model
from .layers import Classifier, ConvReLU, check_input

# Each mlpconv block: (k x k conv channels, kernel, stride, padding, 1x1 channels, 1x1 channels,
# pooling after the block). The paper gives the structure (Fig. 2, Section 4); the numbers
# are those of the authors' released Caffe models for CIFAR-10 and ImageNet.
NIN_CIFAR10 = (
    (192, 5, 1, 2, 160, 96, "max"),
    (192, 5, 1, 2, 192, 192, "avg"),
    (192, 3, 1, 1, 192, None, None),  # None: the last 1x1 layer has num_classes channels
)
NIN_IMAGENET = (
    (96, 11, 4, 0, 96, 96, "max"),
    (256, 5, 1, 2, 256, 256, "max"),
    (384, 3, 1, 1, 384, 384, "max"),
    (1024, 3, 1, 1, 1024, None, None),
)


class MLPConv(nn.Module):
    """The mlpconv layer: a k x k convolution followed by two 1x1 convolutions, each with ReLU.

    With `out=None` the second 1x1 convolution is left out (NiN's last block, whose second
    1x1 convolution is the classifier).
    """

    def __init__(
        self, in_channels: int, channels: int, kernel_size: int, stride: int, padding: int, mid: int, out: int | None
    ):
        super().__init__()
        self.conv = ConvReLU(in_channels, channels, kernel_size, stride, padding)
        self.cccp1 = ConvReLU(channels, mid, 1)
        self.cccp2 = ConvReLU(mid, out, 1) if out is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.cccp2(self.cccp1(self.conv(x)))


class NiN(Classifier, nn.Module):
    """Stacked mlpconv blocks with pooling and dropout between them; the last 1x1 convolution
    has one channel per class and global average pooling gives the logits (no fully
    connected layer).

    Pooling is 3x3 stride 2 with ceil rounding as in Caffe (32 -> 16 -> 8 on CIFAR-10);
    dropout 0.5 after every block but the last (Section 4: "dropout is applied on the outputs
    of all but the last mlpconv layers").

    Deviations from the paper: the channel numbers come from the authors' released models,
    not the paper text; the last 1x1 layer has ReLU as in those models, so logits are >= 0
    (`last_relu=False` removes it).
    """

    classifier_name = "classifier"

    def __init__(self, cfg, num_classes: int, in_size: int, dropout: float = 0.5, last_relu: bool = True):
        super().__init__()
        self.input_size = (3, in_size, in_size)
        layers: list[nn.Module] = []
        in_channels = 3
        for i, (channels, k, s, p, mid, out, pool) in enumerate(cfg):
            layers.append(MLPConv(in_channels, channels, k, s, p, mid, out))
            if pool == "max":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            elif pool == "avg":
                layers.append(nn.AvgPool2d(3, 2, ceil_mode=True))
            if i < len(cfg) - 1:
                layers.append(nn.Dropout(dropout))
            in_channels = out
        self.features = nn.Sequential(*layers)
        self.feature_channels = cfg[-1][4]
        self.last_relu = last_relu
        self.classifier = self._classifier(num_classes)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def _classifier(self, num_classes: int) -> nn.Module:
        if self.last_relu:
            return ConvReLU(self.feature_channels, num_classes, 1)
        return nn.Conv2d(self.feature_channels, num_classes, 1)

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, (3, None, None))
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if pre_logits:  # NiN has no layer between its features and its classes: pool them
            return torch.flatten(self.pool(x), 1)
        return torch.flatten(self.pool(self.classifier(x)), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        ref = self.features[0].conv.conv.weight
        self.classifier = self._classifier(num_classes).to(device=ref.device, dtype=ref.dtype)


@register_model(paper="Lin et al., Network In Network", year=2013, input_size=(3, 224, 224), num_classes=1000)
def nin(*, num_classes: int = 1000, **kwargs) -> NiN:
    """Network in Network for ImageNet: four mlpconv blocks, global average pooling."""
    return NiN(NIN_IMAGENET, num_classes, in_size=224, **kwargs)


@register_model(paper="Lin et al., Network In Network", year=2013, input_size=(3, 32, 32), num_classes=10)
def nin_cifar(*, num_classes: int = 10, **kwargs) -> NiN:
    """Network in Network for CIFAR-10: three mlpconv blocks (192-160-96, 192x3, 192-192-C)."""
    return NiN(NIN_CIFAR10, num_classes, in_size=32, **kwargs)
