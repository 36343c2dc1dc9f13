"""Backpropagation by hand: the lectures' layers as NumPy forward and backward passes (layers.py,
with im2col.py), the losses and their gradients (losses.py), SGD with momentum and Adam
(optim.py), a zoo model as a NumPy network and back (convert.py), checks against autograd and
finite differences (check.py), and the NumPy engine of `cnnlab train --engine numpy` (engine.py).
docs/backprop.md derives every backward rule."""

from .convert import Network, from_torch, to_torch
from .losses import mean_squared_error, softmax, softmax_cross_entropy

__all__ = ["Network", "from_torch", "mean_squared_error", "softmax", "softmax_cross_entropy", "to_torch"]
