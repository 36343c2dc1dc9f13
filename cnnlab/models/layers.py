"""Blocks shared by two or more model families, and the input check every model uses."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, fx, nn

from ..errors import InputShapeError


def _fmt(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def tracing(x) -> bool:
    """Whether x is torch.fx's symbolic stand-in for a tensor (which has no sizes to check)."""
    return isinstance(x, fx.Proxy)


def check_multiple(model: nn.Module, x: Tensor, multiple: int) -> None:
    """Raise InputShapeError unless x's height and width are multiples of `multiple`."""
    if tracing(x) or not (x.shape[2] % multiple or x.shape[3] % multiple):
        return
    name = getattr(model, "model_name", type(model).__name__)
    raise InputShapeError(f"{name} needs height and width divisible by {multiple}, got {tuple(x.shape[2:])}")


def check_input(model: nn.Module, x: Tensor, expected: tuple) -> None:
    """Raise InputShapeError unless x is (N, *expected); None in `expected` matches any size.

    The message names the model and both shapes, e.g.
    ``lenet5 expects input (N, 1, 32, 32), got (N, 3, 28, 28)``.
    Under torch.fx's symbolic tracing (torchvision's feature extraction) x has no shape to
    check, and the check is left out of the traced graph.
    """
    if tracing(x):
        return
    shape = tuple(x.shape)
    if len(shape) == len(expected) + 1 and all(e is None or e == s for e, s in zip(expected, shape[1:])):
        return
    name = getattr(model, "model_name", type(model).__name__)
    want = _fmt(["N", *("HW"[i - 1] if e is None and len(expected) == 3 else e for i, e in enumerate(expected))])
    got = _fmt(shape) if len(shape) <= 1 or len(shape) == len(expected) else _fmt(["N", *shape[1:]])
    hint = "; add a batch dimension (x.unsqueeze(0))" if len(shape) == len(expected) else ""
    raise InputShapeError(f"{name} expects input {want}, got {got}{hint}")


class LocalResponseNorm(nn.LocalResponseNorm):
    """PyTorch's LocalResponseNorm, computed in float32 for bfloat16 and float16 inputs on the
    CPU, where the pooling inside it has no kernel for them; the output keeps the input's type."""

    def forward(self, x: Tensor) -> Tensor:
        if not tracing(x) and x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16):
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


def local_response_norm(size: int, alpha: float, beta: float, k: float) -> LocalResponseNorm:
    """Local response normalisation in the papers' convention (Krizhevsky et al. 2012, §3.3):

        b_i = a_i / (k + alpha * sum_{j in window} a_j^2) ** beta

    PyTorch's (and Caffe's) LocalResponseNorm divides alpha by the window size; this
    returns the layer whose output is the formula above.
    """
    return LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


class ConvReLU(nn.Module):
    """Convolution (with bias) followed by ReLU, the unit of the pre-batch-norm papers."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, groups: int = 1
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x))


class Classifier:
    """timm's classifier interface, for a model whose class scores come out of one layer, the
    one `classifier_name` names: `get_classifier()`, `num_classes` and `num_features` (the
    layer's outputs and inputs; `forward_head(x, pre_logits=True)` returns `num_features`
    values per image) and `reset_classifier(num_classes)`, a new layer of that many outputs.
    Mixed in before nn.Module."""

    classifier_name = "fc"

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    @property
    def classifier_key(self) -> str:
        """The state-dict key of the classifier's (classes, features, ...) tensor."""
        return f"{self.classifier_name}.{_scores_of(self.get_classifier())[0]}"

    @property
    def num_classes(self) -> int:
        return _scores_of(self.get_classifier())[1].shape[0]

    @property
    def num_features(self) -> int:
        return _scores_of(self.get_classifier())[1].shape[1]

    def reset_classifier(self, num_classes: int) -> None:
        self.set_submodule(self.classifier_name, new_head(self.get_classifier(), num_classes))


def _scores_of(layer: nn.Module) -> tuple[str, Tensor]:
    """The classifier's first tensor and its name in the layer: (classes, features, ...) for a
    linear or convolutional layer (also inside a block) and for LeNet-5's RBF codes."""
    return next(itertools.chain(layer.named_parameters(), layer.named_buffers()))


def new_head(old: nn.Linear, num_classes: int) -> nn.Linear:
    """A fresh linear layer with `old`'s input size, device and dtype (for reset_classifier)."""
    return nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)


class Maxout(nn.Module):
    """Maxout (Goodfellow et al. 2013): the maximum over groups of `pieces` consecutive channels
    (features), so a layer feeding it has `pieces` times the outputs. Never saturates, never dies:
    one piece always passes its gradient."""

    def __init__(self, pieces: int = 2):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        return x.reshape(n, c // self.pieces, self.pieces, *x.shape[2:]).amax(2)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"
