"""The layers with weights or windows, each a forward and a backward pass in NumPy next to its
formula (activations.py: the element-wise ones; blocks.py: chains and the residual block).

A layer keeps what its backward pass needs from its forward pass. `backward(dy)` takes dL/dy,
the gradient of the loss with respect to the layer's output, stores the gradients of its own
parameters in `grads` and returns dL/dx for the layer below (the chain rule, one layer at a
time). `rule` says the backward rule in one line; docs/backprop.md derives each.

Parameters live in `params` (name -> array); a network made by `from_torch(model, share=True)`
holds views of the model's own tensors, so an update here is an update there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .im2col import col2im, im2col, out_size, windows


class Layer(ABC):
    rule = ""
    follows = None  # a module whose train/eval mode this layer takes instead of its caller's (the engine's)

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    @abstractmethod
    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """The output; keeps what `backward` needs."""

    @abstractmethod
    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dL/dx from dL/dy; the parameters' gradients into `grads`."""

    def describe(self) -> str:
        return type(self).__name__


class Conv2d(Layer):
    """y = W * x + b, the cross-correlation of PyTorch's Conv2d (stride, padding, dilation, groups):
    per group, Y = im2col(X) @ W^T, with W reshaped to (filters, C/g * kh * kw)."""

    rule = "dX = col2im(dY · W), dW = dYᵀ · im2col(X), db = Σ dY"

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        super().__init__()
        self.params["weight"] = weight
        if bias is not None:
            self.params["bias"] = bias
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def describe(self) -> str:
        f, c, kh, kw = self.params["weight"].shape
        extra = "".join(
            f", {k} {v}"
            for k, v in (
                ("stride", self.stride),
                ("padding", self.padding),
                ("dilation", self.dilation),
                ("groups", self.groups),
            )
            if v != (0 if k == "padding" else 1)
        )
        return f"Conv2d {c * self.groups}->{f}, {kh}x{kw}{extra}"

    def _matrices(self):
        w = self.params["weight"]
        g, (f, cg, kh, kw) = self.groups, w.shape
        return w.reshape(g, f // g, cg * kh * kw), (kh, kw)

    def forward(self, x, train=True):
        n, c, h, wd = x.shape
        wm, k = self._matrices()
        g = self.groups
        cols = [im2col(part, k, self.stride, self.padding, self.dilation) for part in np.split(x, g, axis=1)]
        ho = out_size(h, k[0], self.stride, self.padding, self.dilation)
        wo = out_size(wd, k[1], self.stride, self.padding, self.dilation)
        y = np.concatenate([cols[i] @ wm[i].T for i in range(g)], axis=1)  # (N * Ho * Wo, F)
        if "bias" in self.params:
            y = y + self.params["bias"]
        self.cols, self.shape = cols, x.shape
        return y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)

    def backward(self, dy, need_dx: bool = True):
        n, f, ho, wo = dy.shape
        wm, k = self._matrices()
        g = self.groups
        dym = dy.transpose(0, 2, 3, 1).reshape(n * ho * wo, f)
        parts = np.split(dym, g, axis=1)
        self.grads["weight"] = np.stack([parts[i].T @ self.cols[i] for i in range(g)]).reshape(
            self.params["weight"].shape
        )
        if "bias" in self.params:
            self.grads["bias"] = dym.sum(0)
        if not need_dx:  # the network's first layer: nothing below it to pass a gradient to
            return None
        n, c, h, w = self.shape
        dx = [
            col2im(parts[i] @ wm[i], (n, c // g, h, w), k, self.stride, self.padding, self.dilation) for i in range(g)
        ]
        return np.concatenate(dx, axis=1)


class Linear(Layer):
    """y = x Wᵀ + b."""

    rule = "dX = dY · W, dW = dYᵀ · X, db = Σ dY"

    def __init__(self, weight, bias=None):
        super().__init__()
        self.params["weight"] = weight
        if bias is not None:
            self.params["bias"] = bias

    def describe(self) -> str:
        out, inp = self.params["weight"].shape
        return f"Linear {inp}->{out}"

    def forward(self, x, train=True):
        self.x = x
        y = x @ self.params["weight"].T
        return y + self.params["bias"] if "bias" in self.params else y

    def backward(self, dy, need_dx: bool = True):
        self.grads["weight"] = dy.T @ self.x
        if "bias" in self.params:
            self.grads["bias"] = dy.sum(0)
        return dy @ self.params["weight"] if need_dx else None


class MaxPool2d(Layer):
    """y = the largest value of each k x k window (padding counts as -inf, never the largest)."""

    rule = "dX: each dY routed to its window's arg-max, 0 elsewhere"

    def __init__(self, kernel: int, stride: int | None = None, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.k, self.stride, self.padding, self.dilation = kernel, stride or kernel, padding, dilation

    def describe(self) -> str:
        return f"MaxPool2d {self.k}x{self.k}/{self.stride}"

    def forward(self, x, train=True):
        w = windows(x, (self.k, self.k), self.stride, self.padding, self.dilation, fill=-np.inf)
        flat = w.reshape(*w.shape[:4], -1)
        self.arg, self.shape = flat.argmax(-1), x.shape  # the first largest, as PyTorch picks
        return np.take_along_axis(flat, self.arg[..., None], -1)[..., 0]

    def backward(self, dy):
        k = self.k
        routed = np.zeros((*dy.shape, k * k), dtype=dy.dtype)
        np.put_along_axis(routed, self.arg[..., None], dy[..., None], -1)
        n, c, ho, wo = dy.shape
        if self.stride == k and self.padding == 0 and self.dilation == 1:  # windows side by side: no overlaps
            dx = np.zeros(self.shape, dtype=dy.dtype)
            dx[:, :, : ho * k, : wo * k] = (
                routed.reshape(n, c, ho, wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho * k, wo * k)
            )
            return dx
        cols = routed.reshape(n, c, ho, wo, k, k).transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)
        return col2im(cols, self.shape, (k, k), self.stride, self.padding, self.dilation)


class AvgPool2d(Layer):
    """y = the mean of each k x k window (padding zeros counted, PyTorch's default)."""

    rule = "dX: each dY spread evenly over its window, dY / k²"

    def __init__(self, kernel: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.k, self.stride, self.padding = kernel, stride or kernel, padding

    def describe(self) -> str:
        return f"AvgPool2d {self.k}x{self.k}/{self.stride}"

    def forward(self, x, train=True):
        self.shape = x.shape
        return windows(x, (self.k, self.k), self.stride, self.padding).mean((-2, -1))

    def backward(self, dy):
        n, c, ho, wo = dy.shape
        spread = np.broadcast_to((dy / self.k**2)[..., None, None], (n, c, ho, wo, self.k, self.k))
        cols = spread.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)
        return col2im(cols, self.shape, (self.k, self.k), self.stride, self.padding)


class GlobalAvgPool(Layer):
    """y = the mean of each feature map (adaptive average pooling to 1x1), kept as (N, C, 1, 1)."""

    rule = "dX = dY / (H·W) at every position"

    def forward(self, x, train=True):
        self.shape = x.shape
        return x.mean((2, 3), keepdims=True)

    def backward(self, dy):
        h, w = self.shape[2:]
        return np.broadcast_to(dy / (h * w), self.shape).copy()


class Subsampling(Layer):
    """LeNet-5's S2/S4: y = a_c · (sum of each 2x2 window) + b_c, one coefficient and bias per map."""

    rule = "dX = a_c · dY on each of its 4 inputs, da = Σ dY · window sums, db = Σ dY"

    def __init__(self, weight, bias):
        super().__init__()
        self.params.update(weight=weight, bias=bias)

    def forward(self, x, train=True):
        self.sums = windows(x, (2, 2), 2, 0).sum((-2, -1))
        return self.sums * self.params["weight"][:, None, None] + self.params["bias"][:, None, None]

    def backward(self, dy):
        self.grads["weight"] = (dy * self.sums).sum((0, 2, 3))
        self.grads["bias"] = dy.sum((0, 2, 3))
        d = dy * self.params["weight"][:, None, None]
        return np.repeat(np.repeat(d, 2, axis=2), 2, axis=3)


class BatchNorm(Layer):
    """y = γ (x − μ) / √(σ² + ε) + β per channel (axis 1), μ and σ² of the batch in training (the
    running averages updated with `momentum`, the variance unbiased as PyTorch keeps it), the
    running averages in evaluation."""

    rule = "dX = γ/(N·σ̂)·(N·dY − Σ dY − X̂·Σ dY·X̂), dγ = Σ dY·X̂, dβ = Σ dY"

    def __init__(self, weight, bias, running_mean, running_var, eps=1e-5, momentum=0.1, tracked=None):
        super().__init__()
        self.params.update(weight=weight, bias=bias)
        self.buffers.update(running_mean=running_mean, running_var=running_var)
        if tracked is not None:
            self.buffers["num_batches_tracked"] = tracked
        self.eps, self.momentum = eps, momentum

    def describe(self) -> str:
        return f"BatchNorm {len(self.params['weight'])}"

    def forward(self, x, train=True):
        train = train if self.follows is None else self.follows.training  # a frozen layer stays in eval
        axes = (0, *range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if train:
            mean, var = x.mean(axes), x.var(axes)
            n = x.size // x.shape[1]
            m = self.momentum
            self.buffers["running_mean"] *= 1 - m
            self.buffers["running_mean"] += m * mean
            self.buffers["running_var"] *= 1 - m
            self.buffers["running_var"] += m * var * n / max(n - 1, 1)
            if "num_batches_tracked" in self.buffers:
                self.buffers["num_batches_tracked"] += 1
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        self.train, self.axes, self.shape = train, axes, shape
        self.inv = (1 / np.sqrt(var + self.eps)).astype(x.dtype)
        self.xhat = (x - mean.reshape(shape)) * self.inv.reshape(shape)
        return self.xhat * self.params["weight"].reshape(shape) + self.params["bias"].reshape(shape)

    def backward(self, dy):
        axes, shape, xhat = self.axes, self.shape, self.xhat
        self.grads["weight"] = (dy * xhat).sum(axes)
        self.grads["bias"] = dy.sum(axes)
        scale = (self.params["weight"] * self.inv).reshape(shape)
        if not self.train:  # the statistics are constants
            return dy * scale
        n = dy.size // dy.shape[1]
        return scale / n * (n * dy - dy.sum(axes).reshape(shape) - xhat * (dy * xhat).sum(axes).reshape(shape))
