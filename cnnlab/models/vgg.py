"""VGG configurations A, A-LRN, B, C, D and E (Simonyan & Zisserman 2014).

Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015 (arXiv:1409.1556), Table 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import register_model
from .layers import Classifier, check_input, local_response_norm

# Simonyan & Zisserman 2014, Table 1: an int is a 3x3 convolution with that many channels
# (padding 1), (c, 1) a 1x1 convolution, "M" 2x2 max-pooling, "LRN" local response norm.
VGG_CFGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "A-LRN": (64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "C": (64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M", 512, 512, (512, 1), "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def make_layers(
    cfg, batch_norm: bool, first_padding: int = 1, ceil_mode: bool = False, in_channels: int = 3, width: float = 1.0
) -> nn.Sequential:
    """The convolutional part of a VGG configuration, laid out as torchvision's `features`.

    FCN's backbone pads the first convolution by 100 and pools with ceil rounding (Caffe);
    `width` scales every channel count (cheap CPU variants of the segmentation networks).
    """
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
        elif v == "LRN":  # A-LRN: Krizhevsky et al.'s parameters (Section 2.3)
            layers.append(local_response_norm(5, alpha=1e-4, beta=0.75, k=2.0))
        else:
            channels, k = v if isinstance(v, tuple) else (v, 3)
            channels = max(1, round(channels * width))
            padding = first_padding if not layers else k // 2
            layers.append(nn.Conv2d(in_channels, channels, k, padding=padding))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
    return nn.Sequential(*layers)


class VGG(Classifier, nn.Module):
    """A VGG configuration: 3x3 convolutions in five stages, each closed by 2x2 max-pooling,
    then FC-4096, FC-4096 (each with ReLU and dropout 0.5) and the classifier.

    Module names follow torchvision (`features`, `classifier`) so its state dicts load unchanged.

    Deviations from the paper:
    - The `*_bn` networks add batch normalisation after every convolution (Ioffe & Szegedy
      2015); the paper predates it. They are torchvision's `vgg*_bn`.
    - Initialisation is torchvision's (He normal for convolutions, N(0, 0.01^2) for the fully
      connected layers); the paper trained A from N(0, 0.01^2) and started the deeper nets
      from A's weights, and later switched to Glorot initialisation.
    - At test time the paper turns the fully connected layers into convolutions to evaluate
      whole images of any size; here the input is the 224x224 training crop.
    """

    input_size = (3, 224, 224)

    def __init__(self, cfg, num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5):
        super().__init__()
        self.features = make_layers(cfg, batch_norm)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        self.classifier_name = f"classifier.{len(self.classifier) - 1}"
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, self.input_size)
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = torch.flatten(x, 1)
        *hidden, last = self.classifier  # called one by one: a slice would be a module FX cannot trace
        for layer in hidden:
            x = layer(x)
        return x if pre_logits else last(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


_PAPER = dict(
    paper="Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    year=2014,
    input_size=(3, 224, 224),
    num_classes=1000,
)


@register_model(**_PAPER)
def vgg11(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration A: 11 weight layers."""
    return VGG(VGG_CFGS["A"], num_classes, **kwargs)


@register_model(**_PAPER)
def vgg11_lrn(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration A-LRN: A with local response normalisation after the first layer."""
    return VGG(VGG_CFGS["A-LRN"], num_classes, **kwargs)


@register_model(**_PAPER)
def vgg13(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration B: 13 weight layers."""
    return VGG(VGG_CFGS["B"], num_classes, **kwargs)


@register_model(**_PAPER)
def vgg16_c(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration C: 16 weight layers, a 1x1 convolution closing stages 3 to 5."""
    return VGG(VGG_CFGS["C"], num_classes, **kwargs)


@register_model(**_PAPER)
def vgg16(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration D: 16 weight layers, all 3x3."""
    return VGG(VGG_CFGS["D"], num_classes, **kwargs)


@register_model(**_PAPER)
def vgg19(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration E: 19 weight layers."""
    return VGG(VGG_CFGS["E"], num_classes, **kwargs)


@register_model(**_PAPER)
def vgg11_bn(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration A with batch normalisation."""
    return VGG(VGG_CFGS["A"], num_classes, batch_norm=True, **kwargs)


@register_model(**_PAPER)
def vgg11_lrn_bn(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration A-LRN with batch normalisation."""
    return VGG(VGG_CFGS["A-LRN"], num_classes, batch_norm=True, **kwargs)


@register_model(**_PAPER)
def vgg13_bn(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration B with batch normalisation."""
    return VGG(VGG_CFGS["B"], num_classes, batch_norm=True, **kwargs)


@register_model(**_PAPER)
def vgg16_c_bn(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration C with batch normalisation."""
    return VGG(VGG_CFGS["C"], num_classes, batch_norm=True, **kwargs)


@register_model(**_PAPER)
def vgg16_bn(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration D with batch normalisation."""
    return VGG(VGG_CFGS["D"], num_classes, batch_norm=True, **kwargs)


@register_model(**_PAPER)
def vgg19_bn(*, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG configuration E with batch normalisation."""
    return VGG(VGG_CFGS["E"], num_classes, batch_norm=True, **kwargs)
