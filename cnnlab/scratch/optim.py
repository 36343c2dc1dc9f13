"""The optimisers as PyTorch defines them, on NumPy arrays, in place: SGD with momentum (and
Nesterov's variant) and Adam (with L2 weight decay, or AdamW's decoupled decay)."""

from __future__ import annotations

import numpy as np


def sgd_step(
    w, g, buf, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, first=False
):
    """g ← g + λw; v ← μv + g (v = g at the first step); w ← w − lr·(g + μv if Nesterov else v).
    `buf` is v, updated in place (unused without momentum)."""
    if weight_decay:
        g = g + weight_decay * w
    if momentum:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            buf += g
        g = g + momentum * buf if nesterov else buf
    w -= lr * g


def adam_step(w, g, m, v, step: int, lr: float, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """Adam (Kingma & Ba, Algorithm 1) at step t ≥ 1: m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g²,
    w ← w − lr · m̂ / (√v̂ + ε) with m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t). Weight decay λ adds λw
    to g (Adam's L2), or with `decoupled` (AdamW, Loshchilov & Hutter) shrinks w by lr·λ first."""
    b1, b2 = betas
    if weight_decay and decoupled:
        w *= 1 - lr * weight_decay
    elif weight_decay:
        g = g + weight_decay * w
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    denom = np.sqrt(v) / np.sqrt(1 - b2**step) + eps  # √v̂ + ε, in PyTorch's order of operations
    w -= lr / (1 - b1**step) * m / denom
