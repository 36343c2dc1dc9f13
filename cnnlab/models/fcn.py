"""Fully convolutional networks (Long, Shelhamer, Darrell 2015) and the dilated-convolution
context module (Yu & Koltun 2016).

Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015
(arXiv:1411.4038), Section 4 and Fig. 3. Yu, Koltun, "Multi-Scale Context Aggregation by
Dilated Convolutions", ICLR 2016 (arXiv:1511.07122), Section 3 and Table 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import register_model
from .layers import check_input
from .vgg import VGG_CFGS, make_layers

# Long et al. 2015, reference Caffe models: offsets at which each score map is cropped to the
# map it is added to, which undo the 100-pixel padding of conv1_1 at every stride.
FCN_CROPS = {32: {"out": 19}, 16: {"pool4": 5, "out": 27}, 8: {"pool4": 5, "pool3": 9, "out": 31}}

# Yu & Koltun 2016, Table 1: dilation of each 3x3 layer of the context module.
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1)


def bilinear_kernel(channels: int, size: int) -> Tensor:
    """Weights of a transposed convolution that upsamples each channel bilinearly."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    r = torch.arange(size, dtype=torch.float32)
    filt1d = 1 - (r - center).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = filt1d[:, None] * filt1d[None, :]
    return weight


def upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable x`factor` upsampling (kernel 2 * factor), initialised to bilinear."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


def crop(x: Tensor, offset: int, like: Tensor) -> Tensor:
    return x[:, :, offset:offset + like.shape[2], offset:offset + like.shape[3]]


class FCN(nn.Module):
    """FCN-32s, FCN-16s or FCN-8s on VGG-16: the fully connected layers become convolutions
    (fc6: 7x7, fc7: 1x1), a 1x1 convolution scores every class, and learnable transposed
    convolutions (initialised to bilinear) upsample the scores back to the input size, fused
    with scores from pool4 (16s) and pool3 (8s) through the skip links.

    As in the reference models, conv1_1 pads by 100 and the score maps are cropped at fixed
    offsets, so any input size gives output of the same size. The score layers start at zero.
    `features` has torchvision's VGG-16 layout, so ImageNet VGG-16 weights can start it.

    Deviations from the paper: the staged training (32s -> 16s -> 8s) is a training recipe,
    not part of the network; the final x32/x16/x8 upsampling is learnable here (the reference
    models froze it at bilinear).
    """

    input_size = (3, 224, 224)

    def __init__(self, stride: int = 32, num_classes: int = 21, dropout: float = 0.5):
        super().__init__()
        if stride not in FCN_CROPS:
            raise ValueError(f"FCN stride must be 32, 16 or 8, got {stride}")
        self.stride = stride
        self.features = make_layers(VGG_CFGS["D"], batch_norm=False, first_padding=100, ceil_mode=True)
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self.pool3_index, self.pool4_index = pools[2], pools[3]
        self.fc6 = nn.Conv2d(512, 4096, 7)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self._make_scores(num_classes)

    def _make_scores(self, num_classes: int) -> None:
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        if self.stride <= 16:
            self.score_pool4 = nn.Conv2d(512, num_classes, 1)
            self.upscore2 = upsample(num_classes, 2)
        if self.stride == 8:
            self.score_pool3 = nn.Conv2d(256, num_classes, 1)
            self.upscore_pool4 = upsample(num_classes, 2)
        self.upscore = upsample(num_classes, self.stride)
        for m in (self.score_fr, getattr(self, "score_pool4", None), getattr(self, "score_pool3", None)):
            if m is not None:
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (3, None, None))
        h = x
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i == self.pool3_index:
                pool3 = h
            elif i == self.pool4_index:
                pool4 = h
        h = self.dropout(self.relu(self.fc6(h)))
        h = self.dropout(self.relu(self.fc7(h)))
        h = self.score_fr(h)
        crops = FCN_CROPS[self.stride]
        if self.stride <= 16:
            h = self.upscore2(h)
            h = h + crop(self.score_pool4(pool4), crops["pool4"], h)
        if self.stride == 8:
            h = self.upscore_pool4(h)
            h = h + crop(self.score_pool3(pool3), crops["pool3"], h)
        return crop(self.upscore(h), crops["out"], x)

    def reset_classifier(self, num_classes: int) -> None:
        """New score and upsampling layers for `num_classes` classes."""
        ref = self.fc7.weight
        self._make_scores(num_classes)
        self.to(device=ref.device, dtype=ref.dtype)


class ContextModule(nn.Module):
    """The basic context module of Yu & Koltun: seven 3x3 convolutions with dilations 1, 1, 2,
    4, 8, 16, 1 (receptive field 67x67), each followed by ReLU, and a 1x1 convolution; C
    channels throughout, C the number of classes of the front end it refines.

    Identity initialisation (Section 3): every layer passes its input through unchanged, so
    the untrained module outputs max(input, 0).

    Deviations from the paper: only the basic module (C channels everywhere); the large
    module's growing widths and its noisy identity initialisation are not built.
    """

    def __init__(self, num_classes: int = 21):
        super().__init__()
        self.input_size = (num_classes, None, None)
        self.layers = nn.ModuleList(
            nn.Conv2d(num_classes, num_classes, 3, padding=d, dilation=d) for d in CONTEXT_DILATIONS)
        self.relu = nn.ReLU()
        self.final = nn.Conv2d(num_classes, num_classes, 1)
        with torch.no_grad():
            for conv in [*self.layers, self.final]:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
                c = conv.kernel_size[0] // 2
                conv.weight[range(num_classes), range(num_classes), c, c] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, self.input_size)
        for conv in self.layers:
            x = self.relu(conv(x))
        return self.final(x)


_FCN = dict(paper="Long et al., Fully Convolutional Networks for Semantic Segmentation", year=2015,
            input_size=(3, 224, 224), num_classes=21)


@register_model(**_FCN)
def fcn32s(*, num_classes: int = 21, **kwargs) -> FCN:
    """FCN-32s: VGG-16, scores upsampled x32 in one step."""
    return FCN(32, num_classes=num_classes, **kwargs)


@register_model(**_FCN)
def fcn16s(*, num_classes: int = 21, **kwargs) -> FCN:
    """FCN-16s: FCN-32s plus a skip link from pool4."""
    return FCN(16, num_classes=num_classes, **kwargs)


@register_model(**_FCN)
def fcn8s(*, num_classes: int = 21, **kwargs) -> FCN:
    """FCN-8s: FCN-16s plus a skip link from pool3."""
    return FCN(8, num_classes=num_classes, **kwargs)


@register_model(paper="Yu & Koltun, Multi-Scale Context Aggregation by Dilated Convolutions", year=2016,
                input_size=(21, 64, 64), num_classes=21)
def dilated_context(*, num_classes: int = 21, **kwargs) -> ContextModule:
    """Dilated-convolution context module (basic), dilations 1-1-2-4-8-16-1, identity init."""
    return ContextModule(num_classes=num_classes, **kwargs)
