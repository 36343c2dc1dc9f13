"""im2col and col2im: a convolution as one matrix product, and its gradient back to the image.

im2col lays every receptive field of the (padded) input out as one row, so that a convolution
is (rows of fields) @ (filters as columns). col2im is its adjoint: it adds each row's values back
onto the pixels they came from, overlapping fields adding up. Both are vectorised over the
pixels: the only Python loop is over the kh x kw offsets of the kernel.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """floor((size + 2p - d(k - 1) - 1) / s) + 1, the output size of a convolution or pooling."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def windows(
    x: np.ndarray, kernel: tuple[int, int], stride: int, padding: int, dilation: int = 1, fill: float = 0.0
) -> np.ndarray:
    """Every receptive field of x (N, C, H, W) as a view (N, C, Ho, Wo, kh, kw): the input padded
    with `fill`, windows `dilation` apart inside, `stride` apart between outputs."""
    kh, kw = kernel
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    span = (dilation * (kh - 1) + 1, dilation * (kw - 1) + 1)
    view = sliding_window_view(x, span, axis=(2, 3))  # (N, C, H', W', span_h, span_w), no copy
    return view[:, :, ::stride, ::stride, ::dilation, ::dilation]


def im2col(x: np.ndarray, kernel: tuple[int, int], stride: int, padding: int, dilation: int = 1) -> np.ndarray:
    """The fields as rows: (N * Ho * Wo, C * kh * kw), channel-major within a row like a filter."""
    w = windows(x, kernel, stride, padding, dilation)
    n, c, ho, wo, kh, kw = w.shape
    return w.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)


def col2im(
    cols: np.ndarray,
    shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    stride: int,
    padding: int,
    dilation: int = 1,
) -> np.ndarray:
    """im2col's adjoint: rows (N * Ho * Wo, C * kh * kw) added back onto an image of `shape`."""
    n, c, h, w = shape
    kh, kw = kernel
    ho, wo = out_size(h, kh, stride, padding, dilation), out_size(w, kw, stride, padding, dilation)
    # (N, C, kh, kw, Ho, Wo), laid out so that each kernel offset's slice is one block of memory
    fields = np.ascontiguousarray(cols.reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 4, 5, 1, 2))
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation, j * dilation
            padded[:, :, top : top + stride * ho : stride, left : left + stride * wo : stride] += fields[:, :, i, j]
    return padded[:, :, padding : padding + h, padding : padding + w]
