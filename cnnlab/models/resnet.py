"""Residual networks (He, Zhang, Ren, Sun 2015): ImageNet ResNet-18 to 152, and the CIFAR-10
ResNets and plain networks of Section 4.2.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385), Table 1 and Section 4.2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .layers import Classifier, check_input


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; the shortcut is added before the last ReLU (Fig. 2)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        stride_in_1x1: bool = False,
        shortcut: bool = True,
    ):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with batch norm; shortcut added before the last ReLU
    (Fig. 5). The stride sits in the first 1x1 convolution (v1, the paper's) or in the 3x3
    convolution (v1.5, torchvision's)."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        stride_in_1x1: bool = True,
        shortcut: bool = True,
    ):
        super().__init__()
        self.conv1 = conv1x1(in_channels, channels, stride if stride_in_1x1 else 1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, 1 if stride_in_1x1 else stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


# He et al. 2015, Table 1: block type and blocks per stage (conv2_x to conv5_x).
RESNET_CFGS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(Classifier, nn.Module):
    """ImageNet ResNet: 7x7/2 conv, 3x3/2 max-pool, four stages of residual blocks (64 to 512
    channels, stride 2 at the start of stages 3 to 5), global average pooling, linear layer.

    Shortcuts are identities, with a 1x1 projection (and batch norm) where the shape changes:
    option B of Section 3.3. Module names follow torchvision, whose state dicts load unchanged.

    `variant="v1"` (default) is the paper's: a downsampling bottleneck strides in its first
    1x1 convolution. `variant="v1.5"` is torchvision's (and NVIDIA's "ResNet v1.5"): the 3x3
    convolution strides instead, about 0.5 % more top-1 for 12 % more multiply-adds at 50
    layers. Basic blocks are the same in both.

    Deviations from the paper: `zero_init_residual=True` (off by default) starts every block as
    an identity (Goyal et al. 2017); initialisation is He normal (fan-out) as in torchvision.
    """

    input_size = (3, 224, 224)

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, ...],
        num_classes: int = 1000,
        variant: str = "v1",
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if variant not in ("v1", "v1.5"):
            raise ValueError(f"variant must be 'v1' or 'v1.5', got {variant!r}")
        self.variant = variant
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_resnet(self, zero_init_residual)

    def _make_layer(self, block, channels: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_channels != channels * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.in_channels, channels * block.expansion, stride),
                nn.BatchNorm2d(channels * block.expansion),
            )
        s1 = self.variant == "v1"
        layers = [block(self.in_channels, channels, stride, downsample, stride_in_1x1=s1)]
        self.in_channels = channels * block.expansion
        layers += [block(self.in_channels, channels, stride_in_1x1=s1) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, (3, None, None))
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@torch.no_grad()
def init_resnet(model: nn.Module, zero_init_residual: bool) -> None:
    """He normal (fan-out) for convolutions, BN to identity; optionally zero the last BN of
    every residual branch so that each block starts as the identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)


class ShortcutA(nn.Module):
    """Option A shortcut (Section 4.2): subsample by striding and pad the new channels with
    zeros, so the shortcut has no parameters."""

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


class CifarResNet(Classifier, nn.Module):
    """The CIFAR-10 networks of He et al. Section 4.2: a 3x3 conv with 16 filters, three stages
    of n basic blocks on 32x32, 16x16 and 8x8 maps with 16, 32 and 64 filters, global average
    pooling and a 10-way linear layer: 6n + 2 weighted layers. `width` scales the channel counts
    (an option for cheap CPU experiments; 1 is the paper's).

    With `shortcut=True` the shortcuts are identities, option A (zero-padded channels) where
    the shape changes, so ResNets have exactly as many parameters as plain nets of the same
    depth (Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M for 20 to 1202 layers).

    Deviations from the paper: none known; the zero channels of option A are padded on both
    sides (half before, half after), as common re-implementations do - the paper does not say.
    """

    input_size = (3, 32, 32)

    def __init__(self, depth: int, num_classes: int = 10, shortcut: bool = True, width: float = 1.0):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        n = (depth - 2) // 6
        c1, c2, c3 = (max(1, round(c * width)) for c in (16, 32, 64))  # width < 1: a cheaper net for CPUs
        self.shortcut = shortcut
        self.conv1 = conv3x3(3, c1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu = nn.ReLU(inplace=True)
        self.in_channels = c1
        self.layer1 = self._make_layer(c1, n, 1)
        self.layer2 = self._make_layer(c2, n, 2)
        self.layer3 = self._make_layer(c3, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)
        init_resnet(self, zero_init_residual=False)

    def _make_layer(self, channels: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            s = stride if i == 0 else 1
            down = ShortcutA(channels, s) if (s != 1 or self.in_channels != channels) else None
            layers.append(BasicBlock(self.in_channels, channels, s, down, shortcut=self.shortcut))
            self.in_channels = channels
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, (3, None, None))
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


_PAPER = dict(paper="He et al., Deep Residual Learning for Image Recognition", year=2015)
_IMAGENET = dict(_PAPER, input_size=(3, 224, 224), num_classes=1000)
_CIFAR = dict(_PAPER, input_size=(3, 32, 32), num_classes=10)


@register_model(**_IMAGENET)
def resnet18(*, num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2)."""
    return ResNet(*RESNET_CFGS[18], num_classes=num_classes, **kwargs)


@register_model(**_IMAGENET)
def resnet34(*, num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3)."""
    return ResNet(*RESNET_CFGS[34], num_classes=num_classes, **kwargs)


@register_model(**_IMAGENET)
def resnet50(*, num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3); variant 'v1' (paper) or 'v1.5' (torchvision)."""
    return ResNet(*RESNET_CFGS[50], num_classes=num_classes, **kwargs)


@register_model(**_IMAGENET)
def resnet101(*, num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-101: bottleneck blocks (3, 4, 23, 3); variant 'v1' (paper) or 'v1.5' (torchvision)."""
    return ResNet(*RESNET_CFGS[101], num_classes=num_classes, **kwargs)


@register_model(**_IMAGENET)
def resnet152(*, num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-152: bottleneck blocks (3, 8, 36, 3); variant 'v1' (paper) or 'v1.5' (torchvision)."""
    return ResNet(*RESNET_CFGS[152], num_classes=num_classes, **kwargs)


@register_model(**_CIFAR)
def resnet20(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR ResNet-20: 20-layer plain net plus identity shortcuts (option A)."""
    return CifarResNet(20, num_classes=num_classes, **kwargs)


@register_model(**_CIFAR)
def resnet32(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR ResNet-32: 32-layer plain net plus identity shortcuts (option A)."""
    return CifarResNet(32, num_classes=num_classes, **kwargs)


@register_model(**_CIFAR)
def resnet44(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR ResNet-44: 44-layer plain net plus identity shortcuts (option A)."""
    return CifarResNet(44, num_classes=num_classes, **kwargs)


@register_model(**_CIFAR)
def resnet56(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR ResNet-56: 56-layer plain net plus identity shortcuts (option A)."""
    return CifarResNet(56, num_classes=num_classes, **kwargs)


@register_model(**_CIFAR)
def resnet110(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR ResNet-110: 110-layer plain net plus identity shortcuts (option A)."""
    return CifarResNet(110, num_classes=num_classes, **kwargs)


@register_model(**_CIFAR)
def resnet1202(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR ResNet-1202: 1202-layer plain net plus identity shortcuts (option A)."""
    return CifarResNet(1202, num_classes=num_classes, **kwargs)


@register_model(**_CIFAR)
def plain20(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR plain net of 20 layers: ResNet-20 without shortcuts."""
    return CifarResNet(20, num_classes=num_classes, shortcut=False, **kwargs)


@register_model(**_CIFAR)
def plain32(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR plain net of 32 layers: ResNet-32 without shortcuts."""
    return CifarResNet(32, num_classes=num_classes, shortcut=False, **kwargs)


@register_model(**_CIFAR)
def plain44(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR plain net of 44 layers: ResNet-44 without shortcuts."""
    return CifarResNet(44, num_classes=num_classes, shortcut=False, **kwargs)


@register_model(**_CIFAR)
def plain56(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR plain net of 56 layers: ResNet-56 without shortcuts."""
    return CifarResNet(56, num_classes=num_classes, shortcut=False, **kwargs)


@register_model(**_CIFAR)
def plain110(*, num_classes: int = 10, **kwargs) -> CifarResNet:
    """CIFAR plain net of 110 layers: ResNet-110 without shortcuts."""
    return CifarResNet(110, num_classes=num_classes, shortcut=False, **kwargs)
