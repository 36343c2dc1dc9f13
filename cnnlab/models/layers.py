"""Blocks shared by two or more model families, and the input check every model uses."""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import InputShapeError


def _fmt(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def check_input(model: nn.Module, x: Tensor, expected: tuple) -> None:
    """Raise InputShapeError unless x is (N, *expected); None in `expected` matches any size.

    The message names the model and both shapes, e.g.
    ``lenet5 expects input (N, 1, 32, 32), got (N, 3, 28, 28)``.
    """
    shape = tuple(x.shape)
    if len(shape) == len(expected) + 1 and all(e is None or e == s for e, s in zip(expected, shape[1:])):
        return
    name = getattr(model, "model_name", type(model).__name__)
    want = _fmt(["N", *("HW"[i - 1] if e is None and len(expected) == 3 else e for i, e in enumerate(expected))])
    got = _fmt(shape) if len(shape) <= 1 or len(shape) == len(expected) else _fmt(["N", *shape[1:]])
    hint = "; add a batch dimension (x.unsqueeze(0))" if len(shape) == len(expected) else ""
    raise InputShapeError(f"{name} expects input {want}, got {got}{hint}")


def local_response_norm(size: int, alpha: float, beta: float, k: float) -> nn.LocalResponseNorm:
    """Local response normalisation in the papers' convention (Krizhevsky et al. 2012, §3.3):

        b_i = a_i / (k + alpha * sum_{j in window} a_j^2) ** beta

    PyTorch's (and Caffe's) LocalResponseNorm divides alpha by the window size; this
    returns the layer whose output is the formula above.
    """
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


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
