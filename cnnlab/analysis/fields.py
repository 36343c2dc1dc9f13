"""Receptive fields: how each kind of operation changes the input pixels (per spatial axis) that
one output value depends on, and the jump, the distance in input pixels between neighbouring
outputs.

A field is a pair (rf, jump) of tuples, one entry per spatial axis (H, W). An entry of None is
"the whole axis" (a mean over it, say); rf None is "the whole input" (a linear layer, global
pooling, a recurrent layer). Each rule is checked in tests/test_analysis.py against the field
measured from gradients: the input pixels whose gradient is non-zero. The rules are exact while
jumps are whole numbers or the reciprocals of whole numbers (integer strides, 2x upsampling);
after a resampling by another ratio (9 to 12 pixels, say), the fields of later layers are upper
bounds.
"""

from __future__ import annotations

import math

Field = tuple[tuple | None, tuple | None]


def merge(fields: list[Field], ndim: int) -> Field:
    """An operation on several tensors (an add, a concatenation) sees what each of them sees."""
    if not fields or any(rf is None for rf, _ in fields):
        return None, None
    rf = tuple(None if any(r[i] is None for r, _ in fields) else max(r[i] for r, _ in fields) for i in range(ndim))
    jump = tuple(None if rf[i] is None else max(j[i] for _, j in fields) for i in range(ndim))
    return whole_if_all(rf, jump)


def whole_if_all(rf: tuple, jump: tuple) -> Field:
    """A field that is the whole of every axis is the whole input."""
    return (None, None) if rf and all(r is None for r in rf) else (rf, jump)


def grow(field: Field, kernel, stride, dilation) -> Field:
    """A sliding window (convolution, pooling): rf + (k - 1) d jump, and the jump times the stride."""
    rf, jump = field
    if rf is None or len(kernel) != len(rf):
        return rf, jump
    rf = tuple(None if r is None else r + (k - 1) * d * j for r, k, d, j in zip(rf, kernel, dilation, jump))
    jump = tuple(None if j is None else j * s for j, s in zip(jump, stride))
    return rf, jump


def transposed(field: Field, kernel, stride, dilation) -> Field:
    """A transposed convolution: each output gathers ceil(((k - 1) d + 1) / s) inputs per axis, and
    the outputs are s times closer together."""
    rf, jump = field
    if rf is None or len(kernel) != len(rf):
        return rf, jump
    span = [math.ceil(((k - 1) * d + 1) / s) for k, s, d in zip(kernel, stride, dilation)]
    rf = tuple(None if r is None else r + (n - 1) * j for r, n, j in zip(rf, span, jump))
    jump = tuple(None if j is None else j / s for j, s in zip(jump, stride))
    return rf, jump


def resample(field: Field, taps, sizes_in, sizes_out) -> Field:
    """A resampling to another size (interpolation, adaptive pooling): each output reads at most
    `taps` neighbouring inputs per axis, and the jump scales by in/out."""
    rf, jump = field
    if rf is None or len(sizes_in) != len(rf):
        return rf, jump
    rf = tuple(None if r is None else r + (t - 1) * j for r, t, j in zip(rf, taps, jump))
    jump = tuple(None if j is None else j * i / o for j, i, o in zip(jump, sizes_in, sizes_out))
    return rf, jump


def adaptive_window(size_in: int, size_out: int) -> int:
    """The largest window of adaptive pooling from `size_in` to `size_out` (PyTorch's windows:
    floor(j in / out) to ceil((j + 1) in / out)); 1 or 2 when it enlarges."""
    return max(math.ceil((j + 1) * size_in / size_out) - (j * size_in) // size_out for j in range(size_out))


def interpolation_taps(mode: str, size_in: int, size_out: int, antialias: bool = False) -> int:
    """Inputs per axis an interpolated output reads: 1 (nearest), 2 (linear), 4 (cubic), or the
    adaptive window (area); an antialiased reduction widens the filter by in/out."""
    if mode == "area":
        return adaptive_window(size_in, size_out)
    taps = {"linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}.get(mode, 1)
    if antialias and size_out < size_in and taps > 1:
        return math.ceil(taps * size_in / size_out) + 1
    return taps


def reduce(field: Field, axes: set[int]) -> Field:
    """A reduction (mean, sum, max, norm, ...) over spatial axes `axes` (0 for H, 1 for W): each
    output sees the whole of those axes."""
    rf, jump = field
    if rf is None:
        return rf, jump
    rf = tuple(None if i in axes else r for i, r in enumerate(rf))
    jump = tuple(None if i in axes else j for i, j in enumerate(jump))
    return whole_if_all(rf, jump)
