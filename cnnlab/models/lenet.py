"""LeNet-5 as published (LeCun et al. 1998) and the lectures' "modified LeNet".

LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document Recognition",
Proc. IEEE 86(11), 1998, Section II.B.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .layers import Classifier, check_input, new_head

# LeCun et al. 1998, Table I: which S2 feature maps (rows of the paper's table) each C3
# feature map (column) combines: six take three contiguous maps, six take four contiguous,
# three take four discontinuous and the last takes all six; 60 connections in all.
C3_TABLE = (
    (0, 1, 2),
    (1, 2, 3),
    (2, 3, 4),
    (3, 4, 5),
    (0, 4, 5),
    (0, 1, 5),
    (0, 1, 2, 3),
    (1, 2, 3, 4),
    (2, 3, 4, 5),
    (0, 3, 4, 5),
    (0, 1, 4, 5),
    (0, 1, 2, 5),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

# LeCun et al. 1998, Appendix A: f(a) = A tanh(S a) with A = 1.7159 and S = 2/3.
TANH_A, TANH_S = 1.7159, 2.0 / 3.0

# LeCun et al. 1998, Fig. 3: the RBF parameter vectors of the digit classes are stylised
# images of the characters on a 7x12 bitmap, +1 for ink and -1 for background. These are
# drawn after the figure (one row of 7 pixels per line, 12 lines a digit).
DIGIT_BITMAPS = """
....... ....... ....... ....... ....... ....... ....... ....... ....... .......
..###.. ...#... ..###.. .#####. .....#. ####### ..####. ####### .#####. .#####.
.#...#. ..##... .#...#. #.....# ....##. #...... .#..... ......# #.....# #.....#
#.....# .#.#... #.....# ......# ...#.#. #...... #...... .....#. #.....# #.....#
#.....# ...#... ......# ......# ..#..#. ######. #...... .....#. #.....# #.....#
#.....# ...#... .....#. ..####. .#...#. ......# ######. ....#.. .#####. #.....#
#.....# ...#... ....#.. ......# #....#. ......# #.....# ....#.. #.....# .######
#.....# ...#... ...#... ......# ####### ......# #.....# ...#... #.....# ......#
#.....# ...#... ..#.... ......# .....#. ......# #.....# ...#... #.....# ......#
.#...#. ...#... .#..... #.....# .....#. #.....# #.....# ..#.... #.....# .....#.
..###.. .#####. ####### .#####. .....#. .#####. .#####. ..#.... .#####. .####..
....... ....... ....... ....... ....... ....... ....... ....... ....... .......
"""


def digit_codes() -> Tensor:
    """The ten 84-dimensional +-1 codes of Fig. 3, one row per digit."""
    rows = [line.split() for line in DIGIT_BITMAPS.strip().splitlines()]
    codes = [[1.0 if c == "#" else -1.0 for row in rows for c in row[d]] for d in range(10)]
    return torch.tensor(codes)


class ScaledTanh(nn.Module):
    """The paper's squashing function 1.7159 * tanh(2a / 3)."""

    def forward(self, x: Tensor) -> Tensor:
        return TANH_A * torch.tanh(TANH_S * x)


class Subsampling(nn.Module):
    """S2/S4: each unit adds its 2x2 inputs, multiplies by a trainable coefficient and adds a
    trainable bias, one coefficient and one bias per feature map."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        summed = F.avg_pool2d(x, 2) * 4
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """A convolution in which output map j sees only the input maps `table[j]`.

    Only the connected kernels are parameters (C3: 60 kernels of 5x5 plus 16 biases = 1,516),
    so `sum(p.numel())` counts what the paper counts.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], in_channels: int, kernel_size: int):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        self.table = table
        index = [out * in_channels + i for out, ins in enumerate(table) for i in ins]
        self.register_buffer("index", torch.tensor(index), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(index), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))

    @property
    def connections(self) -> int:
        return len(self.index)

    def count_macs(self, output: Tensor) -> int:
        """Multiply-adds of the connected kernels only (the analyser asks for this)."""
        return output.numel() // self.out_channels * self.connections * self.kernel_size**2

    def full_weight(self) -> Tensor:
        k = self.kernel_size
        full = self.weight.new_zeros(self.out_channels * self.in_channels, k, k)
        full = full.index_copy(0, self.index, self.weight)
        return full.view(self.out_channels, self.in_channels, k, k)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.full_weight(), self.bias)


class EuclideanRBF(nn.Module):
    """Output layer of Euclidean radial basis function units with fixed codes:
    y_i = sum_j (x_j - w_ij)^2.

    `forward` returns -y_i, so the most likely class has the largest output: cross-entropy
    on these outputs is the paper's MAP loss (eq. 9) without the constant "rubbish class" term.
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        if num_classes == 10 and in_features == 84:
            codes = digit_codes()
        else:  # the paper allows random +-1 codes ("chosen at random with equal probabilities")
            g = torch.Generator().manual_seed(0)
            codes = torch.randint(0, 2, (num_classes, in_features), generator=g).float() * 2 - 1
        self.register_buffer("codes", codes)

    def forward(self, x: Tensor) -> Tensor:
        # sum over i of (x_i - w_ij)^2 (Eq. 7) as |x|^2 - 2 x.w + |w|^2: one matrix product (84 x 10
        # multiply-adds per image, as the analyser counts), and exportable to ONNX, unlike torch.cdist
        return -(x.pow(2).sum(1, keepdim=True) - 2 * (x @ self.codes.T) + self.codes.pow(2).sum(1))


class LeNet5(Classifier, nn.Module):
    """LeNet-5 (LeCun et al. 1998): C1-S2-C3-S4-C5-F6 and an RBF output layer.

    Input: 32x32 grey images (MNIST's 28x28 digits padded by 2). Every layer up to F6 is
    followed by the scaled tanh. Trainable parameters: 60,000 (156 + 12 + 1,516 + 32 +
    48,120 + 10,164); the RBF codes (840 values) are fixed buffers.

    Deviations from the paper:
    - The RBF codes of the ten digits are drawn after Fig. 3, not copied pixel for pixel;
      for a number of classes other than 10 the codes are random +-1 vectors (seed 0).
    - The output is the negated squared distance, so that argmax and cross-entropy work as
      for any classifier (see EuclideanRBF).
    - `head="linear"` replaces the RBF layer with an ordinary linear layer (850 parameters
      more for 10 classes), which is what most re-implementations do.
    - `init="paper"` (default) draws every weight and bias from U(-2.4/F, 2.4/F), F the fan-in;
      the input normalisation of the paper (background -0.1, ink 1.175) belongs to the data.
    """

    classifier_name = "output"

    input_size = (1, 32, 32)

    def __init__(self, num_classes: int = 10, head: str = "rbf", init: str = "paper"):
        super().__init__()
        if head not in ("rbf", "linear"):
            raise ValueError(f"head must be 'rbf' or 'linear', got {head!r}")
        self.act = ScaledTanh()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = PartialConv2d(C3_TABLE, 6, 5)
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.head = head
        self.output = EuclideanRBF(84, num_classes) if head == "rbf" else nn.Linear(84, num_classes)
        if init == "paper":
            self._init_paper()
        elif init != "default":
            raise ValueError(f"init must be 'paper' or 'default', got {init!r}")

    @torch.no_grad()
    def _init_paper(self) -> None:
        """U(-2.4/F, 2.4/F) with F the fan-in of the unit (LeCun et al. 1998, Appendix C)."""

        def uniform(t: Tensor, fan_in: float) -> None:
            t.uniform_(-2.4 / fan_in, 2.4 / fan_in)

        for layer, fan_in in ((self.c1, 25), (self.c5, 400), (self.f6, 120)):
            uniform(layer.weight, fan_in)
            uniform(layer.bias, fan_in)
        for s in (self.s2, self.s4):
            uniform(s.weight, 4)
            uniform(s.bias, 4)
        kernel_fan_in = torch.tensor([25.0 * len(ins) for ins in C3_TABLE for _ in ins])
        map_fan_in = torch.tensor([25.0 * len(ins) for ins in C3_TABLE])
        self.c3.weight.uniform_(-1, 1).mul_(2.4 / kernel_fan_in.view(-1, 1, 1))
        self.c3.bias.uniform_(-1, 1).mul_(2.4 / map_fan_in)
        if isinstance(self.output, nn.Linear):
            uniform(self.output.weight, 84)
            uniform(self.output.bias, 84)

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, self.input_size)
        x = self.act(self.s2(self.act(self.c1(x))))
        x = self.act(self.s4(self.act(self.c3(x))))
        return self.act(self.c5(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.act(self.f6(torch.flatten(x, 1)))
        return x if pre_logits else self.output(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        if self.head == "linear":
            self.output = new_head(self.output, num_classes)
        else:
            self.output = EuclideanRBF(84, num_classes).to(device=self.f6.weight.device, dtype=self.f6.weight.dtype)


class LeNet5Modern(Classifier, nn.Module):
    """The lectures' "modified LeNet": (conv 5x5, ReLU, 2x2 max-pool) x 2, FC-ReLU, FC-ReLU, FC.

    With 28x28 input the first convolution pads by 2, so both input sizes give 6@28x28 after
    C1, 16@5x5 after the second pooling and the same 61,706 parameters (10 classes).

    Deviations from the paper (LeNet-5): ReLU instead of the scaled tanh, max-pooling instead
    of trainable subsampling, a full C3 (2,416 parameters instead of 1,516), a linear output
    layer instead of RBF units, PyTorch's default initialisation.
    """

    classifier_name = "fc3"

    def __init__(self, num_classes: int = 10, input_size: int = 28):
        super().__init__()
        if input_size not in (28, 32):
            raise ValueError(f"input_size must be 28 or 32, got {input_size}")
        self.input_size = (1, input_size, input_size)
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2 if input_size == 28 else 0)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(self, x, self.input_size)
        x = self.pool(self.relu(self.conv1(x)))
        return self.pool(self.relu(self.conv2(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        x = self.relu(self.fc2(x))
        return x if pre_logits else self.fc3(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition",
    year=1998,
    input_size=(1, 32, 32),
    num_classes=10,
)
def lenet5(*, num_classes: int = 10, **kwargs) -> LeNet5:
    """LeNet-5 as published: trainable subsampling, partial C3, scaled tanh, RBF outputs."""
    return LeNet5(num_classes=num_classes, **kwargs)


@register_model(
    paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition",
    year=1998,
    input_size=(1, 28, 28),
    num_classes=10,
)
def lenet5_modern(*, num_classes: int = 10, **kwargs) -> LeNet5Modern:
    """The lectures' modified LeNet: conv-ReLU-maxpool x2, FC-ReLU x2, FC (input_size 28 or 32)."""
    return LeNet5Modern(num_classes=num_classes, **kwargs)
