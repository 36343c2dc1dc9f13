"""The losses, each returning the loss and its gradient with respect to the network's output."""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """e^z / Σ e^z per row, computed from z − max z (the same value, without overflow)."""
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, smoothing: float = 0.0) -> tuple[float, np.ndarray]:
    """L = −(1/N) Σ_n Σ_k q_nk log p_nk with p = softmax(logits) and q the one-hot label mixed
    with the uniform distribution (label smoothing ε: q = (1 − ε) y + ε / K), PyTorch's
    cross_entropy. Its gradient is (p − q) / N: the predicted minus the wanted distribution."""
    n, k = logits.shape
    q = np.full_like(logits, smoothing / k)
    q[np.arange(n), labels] += 1 - smoothing
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    loss = -(q * log_p).sum() / n
    return float(loss), (np.exp(log_p) - q) / n


def mean_squared_error(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """L = (1/M) Σ (ŷ − y)² over all M values; dL/dŷ = 2 (ŷ − y) / M."""
    diff = pred - target.reshape(pred.shape)
    return float((diff**2).mean()), 2 * diff / diff.size
