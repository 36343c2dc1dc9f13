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
from .layers import Classifier, check_input, check_multiple
from .vgg import VGG_CFGS, make_layers

# Long et al. 2015, reference Caffe models: offsets at which each score map is cropped to the
# map it is added to, which undo the 100-pixel padding of conv1_1 at every stride.
FCN_CROPS = {32: {"out": 19}, 16: {"pool4": 5, "out": 27}, 8: {"pool4": 5, "pool3": 9, "out": 31}}
# With "same" padding instead (pad100=False; sides divisible by 32): a x f upsampling of n values
# (kernel 2f, stride f) gives (n + 1) f, cropped by f / 2 on each side to n f.
SAME_CROPS = {32: {"out": 16}, 16: {"pool4": 1, "out": 8}, 8: {"pool4": 1, "pool3": 1, "out": 4}}

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
    return x[:, :, offset : offset + like.shape[2], offset : offset + like.shape[3]]


class FCN(Classifier, nn.Module):
    """FCN-32s, FCN-16s or FCN-8s on VGG-16: the fully connected layers become convolutions
    (fc6: 7x7, fc7: 1x1), a 1x1 convolution scores every class, and learnable transposed
    convolutions (initialised to bilinear) upsample the scores back to the input size, fused
    with scores from pool4 (16s) and pool3 (8s) through the skip links.

    As in the reference models, conv1_1 pads by 100 and the score maps are cropped at fixed
    offsets, so any input size gives output of the same size. The score layers start at zero.
    `features` has torchvision's VGG-16 layout, so ImageNet VGG-16 weights can start it.

    `width` scales every channel count (VGG's and fc6/fc7's 4096) and `in_channels` the input's,
    for cheap CPU runs on small data such as MNIST scenes; 1 and 3 are the paper's network.
    `pad100=False` pads every convolution to keep its size ("same", fc6 by 3) instead of padding
    the input by 100: on a 64x64 image that is 17 times less work; sides must then be multiples of 32.
    `batch_norm=True` puts batch normalisation after every VGG convolution (torchvision's
    VGG-16-BN layout), for training from scratch where there are no ImageNet weights.

    Deviations from the paper: the staged training (32s -> 16s -> 8s) is a training recipe,
    not part of the network; the final x32/x16/x8 upsampling is learnable here (the reference
    models froze it at bilinear).
    """

    classifier_name = "score_fr"  # the 1x1 scores on fc7; the skip links score the pools likewise

    dense = True  # a class score for every pixel (segmentation), not one per image

    def __init__(
        self,
        stride: int = 32,
        num_classes: int = 21,
        dropout: float = 0.5,
        width: float = 1.0,
        in_channels: int = 3,
        pad100: bool = True,
        batch_norm: bool = False,
    ):
        super().__init__()
        if stride not in FCN_CROPS:
            raise ValueError(f"FCN stride must be 32, 16 or 8, got {stride}")
        self.stride, self.pad100 = stride, pad100
        self.crops = (FCN_CROPS if pad100 else SAME_CROPS)[stride]
        self.input_size = (in_channels, 224, 224)
        self.features = make_layers(
            VGG_CFGS["D"],
            batch_norm=batch_norm,
            first_padding=100 if pad100 else 1,
            ceil_mode=pad100,
            in_channels=in_channels,
            width=width,
        )
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self.pool3_index, self.pool4_index = pools[2], pools[3]
        c4, c5, fc = (max(1, round(c * width)) for c in (256, 512, 4096))
        self.channels = (c4, c5, fc)  # pool3's, pool4's and fc7's channels
        self.fc6 = nn.Conv2d(c5, fc, 7, padding=0 if pad100 else 3)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self._make_scores(num_classes)

    def _make_scores(self, num_classes: int) -> None:
        c3, c4, fc = self.channels
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        if self.stride <= 16:
            self.score_pool4 = nn.Conv2d(c4, num_classes, 1)
            self.upscore2 = upsample(num_classes, 2)
        if self.stride == 8:
            self.score_pool3 = nn.Conv2d(c3, num_classes, 1)
            self.upscore_pool4 = upsample(num_classes, 2)
        self.upscore = upsample(num_classes, self.stride)
        for m in (self.score_fr, getattr(self, "score_pool4", None), getattr(self, "score_pool3", None)):
            if m is not None:
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (self.input_size[0], None, None))
        if not self.pad100:
            check_multiple(self, x, 32)
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
        crops = self.crops
        if self.stride <= 16:
            h = self._fuse(self.upscore2(h), self.score_pool4(pool4), crops["pool4"])
        if self.stride == 8:
            h = self._fuse(self.upscore_pool4(h), self.score_pool3(pool3), crops["pool3"])
        return crop(self.upscore(h), crops["out"], x)

    def _fuse(self, up: Tensor, skip: Tensor, offset: int) -> Tensor:
        """The skip link: upsampled scores plus the pool layer's scores, the larger cropped to the smaller."""
        return up + crop(skip, offset, up) if self.pad100 else crop(up, offset, skip) + skip

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

    dense = True  # a class score for every pixel (segmentation), not one per image

    def __init__(self, num_classes: int = 21):
        super().__init__()
        self.input_size = (num_classes, None, None)
        self.layers = nn.ModuleList(
            nn.Conv2d(num_classes, num_classes, 3, padding=d, dilation=d) for d in CONTEXT_DILATIONS
        )
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


class DilatedFrontEnd(Classifier, nn.Module):
    """Yu & Koltun's front end (Section 4): VGG-16 with pool4 and pool5 removed, conv5 dilated
    by 2 and fc6 (7x7) by 4, so the scores come at 1/8 of the input resolution without losing
    the receptive field; with `context=True` the basic context module refines the scores; a
    x8 transposed convolution (bilinear at init) brings them to the input size.

    Deviations from the paper: "same" zero padding everywhere (the paper pads the input by
    reflection and uses valid convolutions), so the output has the input's size directly;
    `width`, `in_channels` and `batch_norm` as in `FCN`; `fc_width` scales fc6/fc7 alone (default:
    `width`) - at 1/8 resolution fc6 (7x7, 4096 channels) is most of the network's work.
    """

    classifier_name = "score"

    dense = True  # a class score for every pixel (segmentation), not one per image

    def __init__(
        self,
        num_classes: int = 21,
        context: bool = True,
        width: float = 1.0,
        in_channels: int = 3,
        dropout: float = 0.5,
        fc_width: float | None = None,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.input_size = (in_channels, 224, 224)
        cfg = VGG_CFGS["D"][: VGG_CFGS["D"].index("M", 10)]  # up to conv4_3: three pools, stride 8
        layers = list(make_layers(cfg, batch_norm=batch_norm, in_channels=in_channels, width=width))
        c4, fc = max(1, round(512 * width)), max(1, round(4096 * (fc_width or width)))
        for _ in range(3):  # conv5_1..3, dilation 2
            layers += [
                nn.Conv2d(c4, c4, 3, padding=2, dilation=2),
                *([nn.BatchNorm2d(c4)] if batch_norm else []),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.fc6 = nn.Conv2d(c4, fc, 7, padding=12, dilation=4)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.has_context = context
        self._make_scores(num_classes)

    def _make_scores(self, num_classes: int) -> None:
        self.score = nn.Conv2d(self.fc7.out_channels, num_classes, 1)
        self.context = ContextModule(num_classes) if self.has_context else nn.Identity()
        self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, bias=False)
        with torch.no_grad():
            self.upscore.weight.copy_(bilinear_kernel(num_classes, 16))

    def reset_classifier(self, num_classes: int) -> None:
        """New score layer, context module and upsampling for `num_classes` classes."""
        ref = self.fc7.weight
        self._make_scores(num_classes)
        self.to(device=ref.device, dtype=ref.dtype)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (self.input_size[0], None, None))
        check_multiple(self, x, 8)
        h = self.features(x)
        h = self.dropout(self.relu(self.fc6(h)))
        h = self.dropout(self.relu(self.fc7(h)))
        return self.upscore(self.context(self.score(h)))


_FCN = dict(
    paper="Long et al., Fully Convolutional Networks for Semantic Segmentation",
    year=2015,
    input_size=(3, 224, 224),
    num_classes=21,
)


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


@register_model(
    paper="Yu & Koltun, Multi-Scale Context Aggregation by Dilated Convolutions",
    year=2016,
    input_size=(3, 224, 224),
    num_classes=21,
)
def dilated_frontend(*, num_classes: int = 21, **kwargs) -> DilatedFrontEnd:
    """Dilated VGG-16 front end (output stride 8) with the basic context module (context=False: without)."""
    return DilatedFrontEnd(num_classes=num_classes, **kwargs)


@register_model(
    paper="Yu & Koltun, Multi-Scale Context Aggregation by Dilated Convolutions",
    year=2016,
    input_size=(21, 64, 64),
    num_classes=21,
)
def dilated_context(*, num_classes: int = 21, **kwargs) -> ContextModule:
    """Dilated-convolution context module (basic), dilations 1-1-2-4-8-16-1, identity init."""
    return ContextModule(num_classes=num_classes, **kwargs)
