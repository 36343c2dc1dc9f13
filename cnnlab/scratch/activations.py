"""The element-wise layers and those that only move values: non-linearities (dX = dY · f'(X)),
flatten and dropout."""

from __future__ import annotations

import numpy as np

from .layers import Layer


class ReLU(Layer):
    """y = max(x, 0)."""

    rule = "dX = dY · [X > 0]"

    def forward(self, x, train=True):
        self.on = x > 0
        return np.maximum(x, 0)

    def backward(self, dy):
        return dy * self.on


class LeakyReLU(Layer):
    """y = x for x > 0, slope · x otherwise."""

    rule = "dX = dY · (1 if X > 0 else slope)"

    def __init__(self, slope: float = 0.01):
        super().__init__()
        self.slope = slope

    def forward(self, x, train=True):
        self.on = x > 0
        return np.where(self.on, x, self.slope * x).astype(x.dtype)

    def backward(self, dy):
        return np.where(self.on, dy, self.slope * dy).astype(dy.dtype)


class Tanh(Layer):
    """y = tanh x, scaled as LeNet-5's 1.7159 tanh(2x/3) with `amplitude` and `slope`."""

    rule = "dX = dY · A·S·(1 − tanh²(S·X))"

    def __init__(self, amplitude: float = 1.0, slope: float = 1.0):
        super().__init__()
        self.a, self.s = amplitude, slope

    def describe(self) -> str:
        return "Tanh" if (self.a, self.s) == (1.0, 1.0) else f"{self.a:g}·tanh({self.s:.4g}·x)"

    def forward(self, x, train=True):
        self.t = np.tanh(self.s * x)
        return self.a * self.t if self.a != 1.0 else self.t

    def backward(self, dy):
        return dy * (self.a * self.s) * (1 - self.t**2)


class Sigmoid(Layer):
    """y = 1 / (1 + e^-x)."""

    rule = "dX = dY · Y · (1 − Y)"

    def forward(self, x, train=True):
        self.y = 1 / (1 + np.exp(-x))
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C·H·W)."""

    rule = "dX = dY reshaped to X's shape"

    def forward(self, x, train=True):
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dy):
        return dy.reshape(self.shape)


class Dropout(Layer):
    """Training: each unit kept with probability 1 − p and scaled by 1 / (1 − p); evaluation: y = x.
    `draw(shape)` gives uniform numbers in [0, 1) (NumPy's generator unless given)."""

    rule = "dX = dY · mask / (1 − p), the same mask as forward"

    def __init__(self, p: float, draw=None):
        super().__init__()
        self.p = p
        self.draw = draw or np.random.default_rng(0).random

    def describe(self) -> str:
        return f"Dropout p={self.p:g}"

    def forward(self, x, train=True):
        train = train if self.follows is None else self.follows.training
        if not train or self.p == 0:
            self.mask = None
            return x
        self.mask = (self.draw(x.shape) >= self.p).astype(x.dtype) / (1 - self.p)
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask
