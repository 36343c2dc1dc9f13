"""Small CIFAR-10 networks built to test one design idea each (the lectures' experiments):
a stack of 3x3 convolutions against one large filter (VGG), inception modules with and
without 1x1 reductions (GoogLeNet), and an AlexNet whose layers can be removed (Zeiler & Fergus).
They are scaled down so that a CPU trains them in minutes; the idea under test is exact."""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import CnnlabError
from ..registry import register_model
from .googlenet import ConvBNReLU, InceptionModule
from .layers import Classifier, ConvReLU, check_input


class _Classifier(Classifier, nn.Module):
    """Shared plumbing: `features` then `head` (flatten or pooling, hidden layers) then `fc`."""

    input_size = (3, 32, 32)

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, self.input_size)
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class FilterStack(_Classifier):
    """A 3x3/2 stem convolution to `channels` channels (16x16 maps), then `stages` stages of either
    one `kernel` x `kernel` convolution or a stack of (kernel - 1) / 2 3x3 convolutions with the
    same receptive field, all C -> C channels and each followed by ReLU (VGG, Section 2.3: three
    3x3 layers see 7x7 with 27 C^2 instead of 49 C^2 weights, and three non-linearities instead of
    one); 2x2 max-pooling after each stage, global average pooling, a linear classifier.
    `batchnorm=True` puts batch norm between every convolution and its ReLU (not VGG's: it
    lets both designs train to the end in a short budget)."""

    def __init__(
        self,
        design: str = "3x3",
        kernel: int = 7,
        channels: int = 32,
        stages: int = 2,
        num_classes: int = 10,
        batchnorm: bool = False,
    ):
        super().__init__()
        if design not in ("3x3", "single") or kernel < 3 or kernel % 2 == 0:
            raise CnnlabError(f"design must be 3x3 or single and kernel an odd size >= 3, got {design!r}, {kernel}")
        c = channels

        def unit(cin: int, k: int, stride: int = 1) -> nn.Module:
            if not batchnorm:
                return ConvReLU(cin, c, k, stride=stride, padding=k // 2)
            return nn.Sequential(
                nn.Conv2d(cin, c, k, stride, k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)
            )

        layers: list[nn.Module] = [unit(3, 3, stride=2)]
        for _ in range(stages):
            if design == "single":
                layers.append(unit(c, kernel))
            else:
                layers += [unit(c, 3) for _ in range((kernel - 1) // 2)]
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c, num_classes)


# GoogLeNet's inception (3a) and (3b) (Table 1) at a quarter of the channels.
_INCEPTION_3A = (16, 24, 32, 4, 8, 8)
_INCEPTION_3B = (32, 32, 48, 8, 24, 16)


class InceptionNet(_Classifier):
    """A stem (5x5/2 convolution with 48 filters, 3x3/2 max-pooling: 8x8 maps), inception (3a)
    and (3b) at a quarter of GoogLeNet's channels, global average pooling, a linear classifier.
    `naive=True` uses Fig. 2a modules (no 1x1 reductions; the pooled input passes through, so
    the channels grow), otherwise Fig. 2b's with reductions and pool projections."""

    def __init__(self, naive: bool = False, num_classes: int = 10):
        super().__init__()
        stem = [ConvReLU(3, 48, 5, stride=2, padding=2), nn.MaxPool2d(3, stride=2, padding=1)]
        modules, cin = [], 48
        for c1, c3r, c3, c5r, c5, pp in (_INCEPTION_3A, _INCEPTION_3B):
            block = (
                InceptionModule(cin, c1, None, c3, None, c5, None, naive=True)
                if naive
                else InceptionModule(cin, c1, c3r, c3, c5r, c5, pp)
            )
            modules.append(block)
            cin = block.out_channels
        self.features = nn.Sequential(*stem, *modules)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)


ALEXNET_LAYERS = ("conv3", "conv4", "fc6", "fc7")


class AlexNetCifar(_Classifier):
    """AlexNet's layout at CIFAR scale: conv1 5x5, conv2 5x5, conv3-5 3x3 (torchvision's
    64-192-384-256-256 channels times `width`), 3x3/2 max-pooling after conv1, conv2 and conv5,
    fc6 and fc7 of `fc` units with dropout 0.5, fc8. `remove` drops any of conv3, conv4, fc6, fc7
    (the layers Zeiler & Fergus, Table 3, removed); the next layer then takes what came before.
    `batchnorm=True` puts batch norm between every convolution and its ReLU (not AlexNet's: it
    lets the eight-layer net train as fast per epoch as the ablated ones in a short run)."""

    def __init__(
        self,
        width: float = 0.25,
        fc: int = 512,
        remove: tuple[str, ...] = (),
        num_classes: int = 10,
        batchnorm: bool = False,
    ):
        super().__init__()
        bad = [r for r in remove if r not in ALEXNET_LAYERS]
        if bad:
            raise CnnlabError(f"remove takes {', '.join(ALEXNET_LAYERS)}; got {bad[0]!r}")
        c1, c2, c3, c4, c5 = (max(1, round(c * width)) for c in (64, 192, 384, 256, 256))
        pool = lambda: nn.MaxPool2d(3, stride=2, padding=1)  # noqa: E731
        conv = ConvBNReLU if batchnorm else ConvReLU
        layers = {
            "conv1": conv(3, c1, 5, padding=2),
            "pool1": pool(),
            "conv2": conv(c1, c2, 5, padding=2),
            "pool2": pool(),
        }
        cin = c2
        for name, c in (("conv3", c3), ("conv4", c4)):
            if name not in remove:
                layers[name] = conv(cin, c, 3, padding=1)
                cin = c
        layers.update({"conv5": conv(cin, c5, 3, padding=1), "pool5": pool()})
        self.features = nn.Sequential()
        for name, layer in layers.items():
            self.features.add_module(name, layer)
        self.head = nn.Sequential()
        self.head.add_module("flatten", nn.Flatten())
        width_in = c5 * 4 * 4
        for name in ("fc6", "fc7"):
            if name not in remove:
                self.head.add_module(f"drop{name[2]}", nn.Dropout(0.5))
                self.head.add_module(name, nn.Sequential(nn.Linear(width_in, fc), nn.ReLU(inplace=True)))
                width_in = fc
        self.fc = nn.Linear(width_in, num_classes)


_CIFAR = dict(year=2014, input_size=(3, 32, 32), num_classes=10)


@register_model(paper="Simonyan & Zisserman, Very Deep Convolutional Networks (Section 2.3)", **_CIFAR)
def filter_stack(*, num_classes: int = 10, **kwargs) -> FilterStack:
    """Stages of three 3x3 convolutions (design='3x3') or one 7x7 (design='single'): VGG's argument."""
    return FilterStack(num_classes=num_classes, **kwargs)


@register_model(paper="Szegedy et al., Going Deeper with Convolutions (Fig. 2)", **_CIFAR)
def inception_cifar(*, num_classes: int = 10, **kwargs) -> InceptionNet:
    """Two inception modules (3a, 3b at 1/4 width) on CIFAR: with 1x1 reductions, or naive=True."""
    return InceptionNet(num_classes=num_classes, **kwargs)


@register_model(
    paper="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks (Table 3)",
    year=2014,
    input_size=(3, 32, 32),
    num_classes=10,
)
def alexnet_cifar(*, num_classes: int = 10, **kwargs) -> AlexNetCifar:
    """AlexNet's eight layers at CIFAR scale; remove=('fc6', 'fc7') etc. for the ablation."""
    return AlexNetCifar(num_classes=num_classes, remove=tuple(kwargs.pop("remove", ())), **kwargs)
