"""GoogLeNet / Inception v1 (Szegedy et al. 2014) and torchvision's batch-norm variant.

Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich, "Going Deeper
with Convolutions", CVPR 2015 (arXiv:1409.4842), Table 1 and Section 5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .layers import Classifier, ConvReLU, check_input, local_response_norm, new_head

# Szegedy et al. 2014, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_CFGS = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}  # the first number is the input channels, the sum of the previous row's outputs


class ConvBNReLU(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU: torchvision's BasicConv2d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionModule(nn.Module):
    """The inception module: 1x1, 3x3 and 5x5 convolutions and 3x3 max-pooling side by side,
    their outputs concatenated along the channels (Szegedy et al. 2014, Fig. 2).

    With bottlenecks (Fig. 2b, the default) a 1x1 reduction precedes the 3x3 and 5x5
    convolutions and a 1x1 projection follows the pooling; output channels
    ch1x1 + ch3x3 + ch5x5 + pool_proj. `naive=True` (Fig. 2a) has no reductions: pass None for
    ch3x3red, ch5x5red and pool_proj; the pooled input passes through, so the output has
    ch1x1 + ch3x3 + ch5x5 + in_channels channels.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int | None,
        ch3x3: int,
        ch5x5red: int | None,
        ch5x5: int,
        pool_proj: int | None,
        naive: bool = False,
        conv_block: Callable[..., nn.Module] = ConvReLU,
        kernel5: int = 5,
    ):
        super().__init__()
        self.branch1 = conv_block(in_channels, ch1x1, 1)
        if naive:
            given = {
                k: v
                for k, v in (("ch3x3red", ch3x3red), ("ch5x5red", ch5x5red), ("pool_proj", pool_proj))
                if v is not None
            }
            if given:
                raise ValueError(f"a naive inception module has no reductions; pass None for {sorted(given)}")
            self.branch2 = conv_block(in_channels, ch3x3, 3, padding=1)
            self.branch3 = conv_block(in_channels, ch5x5, kernel5, padding=kernel5 // 2)
            self.branch4 = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
            self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels
        else:
            self.branch2 = nn.Sequential(
                conv_block(in_channels, ch3x3red, 1), conv_block(ch3x3red, ch3x3, 3, padding=1)
            )
            self.branch3 = nn.Sequential(
                conv_block(in_channels, ch5x5red, 1), conv_block(ch5x5red, ch5x5, kernel5, padding=kernel5 // 2)
            )
            self.branch4 = nn.Sequential(
                nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv_block(in_channels, pool_proj, 1)
            )
            self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier (Section 5): 5x5/3 average pooling (4x4 maps), 1x1 conv with 128
    filters, FC-1024 with ReLU, dropout 0.7, linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, conv_block: Callable[..., nn.Module]):
        super().__init__()
        self.conv = conv_block(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(0.7)

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(x, (4, 4))  # = 5x5 stride-3 average pooling on 14x14 maps
        x = self.conv(x)
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)
        return self.fc2(self.dropout(x))


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet returns in training mode with auxiliary classifiers: the main logits and
    the logits of the auxiliary classifiers after 4a (`aux1`) and 4d (`aux2`). The paper adds
    their losses with weight 0.3."""

    logits: Tensor
    aux1: Tensor
    aux2: Tensor


class GoogLeNet(Classifier, nn.Module):
    """GoogLeNet (Inception v1): stem, nine inception modules in three stages, global average
    pooling, dropout and one linear layer; auxiliary classifiers on 4a and 4d.

    In training mode with `aux_logits=True`, forward returns GoogLeNetOutputs(logits, aux1,
    aux2); in eval mode (or with `aux_logits=False`, which builds no auxiliary modules) it
    returns the logits alone. Module names follow torchvision's GoogLeNet.

    `batch_norm=False` is the paper's network: convolutions with bias and ReLU, LRN after the
    first pooling and after conv3 (the 3x3 convolution of the stem), true 5x5 convolutions,
    3x3/2 max-pooling before 5a, dropout 0.4; 6,998,552 parameters for 1000 classes without
    the auxiliary classifiers.

    `batch_norm=True` is torchvision's `googlenet`: batch norm after every convolution, no LRN,
    2x2/2 pooling before 5a, dropout 0.2, and 3x3 convolutions in the "5x5" branches - a
    known slip of the original implementation that torchvision keeps so that its published
    weights load.

    Deviations from the paper: average pooling is adaptive (equal to the paper's 7x7/1 and
    5x5/3 pooling at 224x224 input). Initialisation follows the authors' Caffe release
    (Xavier, biases 0.2) for the paper's network and torchvision for the variant.
    """

    input_size = (3, 224, 224)

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = True,
        batch_norm: bool = False,
        dropout: float | None = None,
        transform_input: bool = False,
    ):
        super().__init__()
        # torchvision's published GoogLeNet weights were trained on inputs scaled to [-1, 1];
        # with transform_input the model takes ImageNet-standardised input and rescales it
        self.transform_input = transform_input
        block = ConvBNReLU if batch_norm else ConvReLU
        kernel5 = 3 if batch_norm else 5
        self.batch_norm = batch_norm
        self.conv1 = block(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.norm1 = nn.Identity() if batch_norm else local_response_norm(5, 1e-4 / 5, 0.75, 1.0)
        self.conv2 = block(64, 64, 1)
        self.conv3 = block(64, 192, 3, padding=1)
        self.norm2 = nn.Identity() if batch_norm else local_response_norm(5, 1e-4 / 5, 0.75, 1.0)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
            setattr(self, f"inception{name}", InceptionModule(*INCEPTION_CFGS[name], conv_block=block, kernel5=kernel5))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = (
            nn.MaxPool2d(2, stride=2, ceil_mode=True) if batch_norm else nn.MaxPool2d(3, stride=2, ceil_mode=True)
        )
        self.aux_logits = aux_logits
        self.aux1 = InceptionAux(512, num_classes, block) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, block) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout if dropout is not None else (0.2 if batch_norm else 0.4))
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if self.batch_norm:  # torchvision
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                else:  # the authors' Caffe release
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.constant_(m.bias, 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stem(self, x: Tensor) -> Tensor:
        x = self.norm1(self.maxpool1(self.conv1(x)))
        return self.maxpool2(self.norm2(self.conv3(self.conv2(x))))

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        check_input(self, x, (3, None, None))
        if self.transform_input:  # (x * std + mean - 0.5) / 0.5 per channel
            std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
            mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
            x = x * (std / 0.5) + (mean - 0.5) / 0.5
        x = self.inception3b(self.inception3a(self._stem(x)))
        x = self.inception4a(self.maxpool3(x))
        want_aux = self.aux_logits and self.training
        aux1 = self.aux1(x) if want_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if want_aux else None
        x = self.inception4e(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        return x, aux1, aux2

    def forward_features(self, x: Tensor) -> Tensor:
        return self._forward(x)[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        x, aux1, aux2 = self._forward(x)
        logits = self.forward_head(x)
        if aux1 is None:
            return logits
        return GoogLeNetOutputs(logits, aux1, aux2)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = new_head(self.fc, num_classes)
        if self.aux_logits:
            for aux in (self.aux1, self.aux2):
                aux.fc2 = new_head(aux.fc2, num_classes)


@register_model(
    paper="Szegedy et al., Going Deeper with Convolutions", year=2014, input_size=(3, 224, 224), num_classes=1000
)
def googlenet(*, num_classes: int = 1000, **kwargs) -> GoogLeNet:
    """GoogLeNet (Inception v1) as published: LRN, true 5x5 branches, two auxiliary classifiers."""
    return GoogLeNet(num_classes=num_classes, **kwargs)


@register_model(
    paper="Szegedy et al., Going Deeper with Convolutions", year=2014, input_size=(3, 224, 224), num_classes=1000
)
def googlenet_bn(*, num_classes: int = 1000, **kwargs) -> GoogLeNet:
    """torchvision's GoogLeNet: batch norm, 3x3 in the "5x5" branches (weight-compatible)."""
    return GoogLeNet(num_classes=num_classes, batch_norm=True, **kwargs)
