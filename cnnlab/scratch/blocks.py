"""Layers made of layers: a chain (`Sequential`, backpropagation itself: the backward passes in
reverse order) and the residual block with its shortcuts."""

from __future__ import annotations

import numpy as np

from .activations import ReLU
from .layers import Conv2d, Layer, Linear


class Sequential(Layer):
    """Layers one after another: forward in order, backward in reverse (the chain rule)."""

    rule = "dX = the layers' backward passes in reverse order"

    def __init__(self, layers: list[tuple[str, Layer]]):
        super().__init__()
        self.layers = layers

    def forward(self, x, train=True):
        for _, layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dy, need_dx: bool = True):
        """dL/dx; with `need_dx` False the first layer of weights stops there (the gradient of
        the input itself is not needed to train)."""
        first = next((i for i, (_, layer) in enumerate(self.layers) if layer.params), 0)
        for i, (_, layer) in reversed(list(enumerate(self.layers))):
            if i == first and not need_dx and isinstance(layer, (Conv2d, Linear)):
                return layer.backward(dy, need_dx=False)
            dy = layer.backward(dy)
        return dy

    def named(self, prefix: str = ""):
        """(qualified name, layer) of every layer with parameters or buffers, nested ones included."""
        for name, layer in self.layers:
            full = f"{prefix}{name}"
            if isinstance(layer, Sequential):
                yield from layer.named(full + ".")
            else:
                yield full, layer
                if isinstance(layer, BasicBlock):
                    yield from layer.body.named(full + ".")
                    if isinstance(layer.shortcut, Sequential):
                        yield from layer.shortcut.named(full + ".downsample.")


class ShortcutA(Layer):
    """He et al.'s option A: the identity, every `stride`-th pixel, zero channels added (half
    before, half after) to reach `out_channels`."""

    rule = "dX = dY's own channels, at every stride-th pixel; 0 elsewhere"

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x, train=True):
        self.shape = x.shape
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - x.shape[1]
        self.before = extra // 2
        return np.pad(x, ((0, 0), (self.before, extra - self.before), (0, 0), (0, 0)))

    def backward(self, dy):
        dx = np.zeros(self.shape, dtype=dy.dtype)
        dx[:, :, :: self.stride, :: self.stride] = dy[:, self.before : self.before + self.shape[1]]
        return dx


class BasicBlock(Layer):
    """The residual block: y = relu(F(x) + shortcut(x)), F = conv, BN, ReLU, conv, BN. The sum
    passes the gradient to both paths unchanged, so dX = F'(dY) + shortcut'(dY): the gradient
    reaches x through the skip however small F's is."""

    rule = "dX = F'(dY') + shortcut'(dY'), dY' = dY · [Y > 0]: the skip adds dY' unchanged"

    def __init__(self, body: Sequential, shortcut: Layer | None, has_shortcut: bool = True):
        super().__init__()
        self.body, self.shortcut, self.has_shortcut = body, shortcut, has_shortcut
        self.relu = ReLU()

    def describe(self) -> str:
        kind = (
            "none" if not self.has_shortcut else "identity" if self.shortcut is None else type(self.shortcut).__name__
        )
        return f"BasicBlock (shortcut: {kind})"

    def forward(self, x, train=True):
        out = self.body.forward(x, train)
        if self.has_shortcut:
            out = out + (x if self.shortcut is None else self.shortcut.forward(x, train))
        return self.relu.forward(out, train)

    def backward(self, dy):
        dsum = self.relu.backward(dy)
        dx = self.body.backward(dsum)
        self.branch_grad, self.skip_grad = dx, None  # the two ways back to x, for the walk-through
        if self.has_shortcut:
            self.skip_grad = dsum if self.shortcut is None else self.shortcut.backward(dsum)
            dx = dx + self.skip_grad
        return dx
