"""The lectures' conv arithmetic, by hand: output sizes of convolutions, pooling and transposed
convolutions (with the paddings that fit when a size does not), receptive fields of a stack, and
parameter counts."""

from __future__ import annotations

import math

from ..errors import ConvArithmeticError


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1, strict: bool = True
) -> int:
    """Output size of a convolution: (N + 2P - D(F - 1) - 1) / S + 1.

    With `strict=True` a non-integer result raises ConvArithmeticError naming the paddings that
    fit; `strict=False` rounds down, as PyTorch does.
    """
    _check_positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
    span = dilation * (kernel - 1) + 1
    room = size + 2 * padding - span
    if room < 0:
        raise ConvArithmeticError(
            f"kernel {kernel} (dilation {dilation}) spans {span} pixels but the input "
            f"is {size} + 2*{padding} padding = {size + 2 * padding}"
        )
    if room % stride and strict:
        fits = [
            p for p in range(0, span + stride) if (size + 2 * p - span) >= 0 and (size + 2 * p - span) % stride == 0
        ]
        raise ConvArithmeticError(
            f"({size} + 2*{padding} - {dilation}*({kernel} - 1) - 1) / {stride} + 1 = {room / stride + 1:g} "
            f"is not an integer: the last {room % stride} pixel(s) would be dropped (PyTorch rounds down to "
            f"{room // stride + 1}); "
            + (
                f"paddings that fit: {', '.join(map(str, fits[:6]))}"
                if fits
                else f"no padding fits; input sizes that fit unpadded: {size - room % stride}, "
                f"{size - room % stride + stride}"
            )
        )
    return room // stride + 1


def pool_output_size(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
    strict: bool = True,
) -> int:
    """Output size of max/average pooling (stride defaults to the kernel size). With
    `ceil_mode=True` the result rounds up as in PyTorch and Caffe (a last window must start
    inside the input or its left padding); otherwise it is `conv_output_size`."""
    stride = kernel if stride is None else stride
    if not ceil_mode:
        return conv_output_size(size, kernel, stride, padding, dilation, strict=strict)
    span = dilation * (kernel - 1) + 1
    out = math.ceil((size + 2 * padding - span) / stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_transpose_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output size of a transposed convolution: (N - 1)S - 2P + D(F - 1) + output_padding + 1."""
    _check_positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
    if output_padding >= max(stride, dilation):
        raise ConvArithmeticError(
            f"output_padding {output_padding} must be smaller than the stride or the dilation ({max(stride, dilation)})"
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ConvArithmeticError(f"padding {padding} leaves no output: (N - 1)S - 2P + D(F - 1) + 1 = {out}")
    return out


def receptive_field(layers) -> list[tuple[int, int]]:
    """Receptive field and jump after each layer of a stack; a layer is (kernel, stride) or
    (kernel, stride, dilation). Three 3x3 stride-1 layers see 7x7, as one 7x7 layer does."""
    rf, jump, out = 1, 1, []
    for layer in layers:
        kernel, stride, dilation = (*layer, 1) if len(layer) == 2 else layer
        rf += (kernel - 1) * dilation * jump
        jump *= stride
        out.append((rf, jump))
    return out


def conv_params(kernel: int, in_channels: int, out_channels: int, bias: bool = True, groups: int = 1) -> int:
    """Parameters of one convolution: F*F*(C_in/groups)*C_out (+ C_out biases). Three 3x3 layers on
    C channels without bias cost 3 * 9C^2 = 27C^2 against 49C^2 for one 7x7 layer."""
    return kernel * kernel * (in_channels // groups) * out_channels + (out_channels if bias else 0)


def _check_positive(**values) -> None:
    for key, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise ConvArithmeticError(f"{key} must be a positive integer, got {v!r}")
