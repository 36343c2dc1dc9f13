"""The lectures' LeNet/AlexNet figures: each layer's output as a box whose height and depth follow
its spatial size and its thickness its channels (logarithmic, so that 224x224x64 and 7x7x512 both
stay readable), labelled with the layer and its shape ("C1: 6@28x28"); fully connected layers as
bars; grouped convolutions as parallel towers; parameters and multiply-adds under every stage.
The numbers are the analyser's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..analysis.result import Analysis, LayerRow
from .svg import FILL, Canvas

DRAWN = ("conv", "pool", "fc")
MAX_STAGES = 24  # more than this, and runs of layers of one kind and shape become one box "x k"


@dataclass
class Stage:
    """One box of the picture: a layer's output (or a run of like layers)."""

    name: str
    kind: str  # conv, pool, fc, input
    what: str  # "conv 5x5/1", "max pool 2x2/2", "fc"
    shape: tuple  # (C, H, W) or (F,)
    groups: int = 1
    params: int = 0
    macs: int = 0
    repeat: int = 1

    @property
    def label(self) -> str:
        if len(self.shape) == 1:
            return f"{self.name}: {self.shape[0]}"
        c, h, w = self.shape
        towers = f"{self.groups} x " if self.groups > 1 else ""
        return f"{self.name}: {towers}{c // self.groups}@{h}x{w}"


def describe(row: LayerRow) -> str:
    """What a layer does, in the lectures' shorthand."""
    if row.kind == "fc":
        return "RBF" if row.type == "EuclideanRBF" else "fc"
    k = f"{row.kernel[0]}x{row.kernel[1]}" if row.kernel else ""
    s = f"/{row.stride[0]}" if row.stride else ""
    if row.kind == "conv":
        extra = (f" g{row.groups}" if (row.groups or 1) > 1 else "") + (
            f" d{row.dilation[0]}" if row.dilation and row.dilation[0] > 1 else ""
        )
        return f"conv {k}{s}{extra}"
    kinds = {"MaxPool2d": "max pool", "AvgPool2d": "avg pool", "Subsampling": "subsampling"}
    if row.type.startswith("Adaptive"):
        return "global pool" if row.output_shape[-1] == 1 else "adaptive pool"
    return f"{kinds.get(row.type, row.type)} {k}{s}".strip()


def stages(result: Analysis) -> list[Stage]:
    """The boxes: the input, then every convolution, pooling and fully connected layer with the
    parameters and multiply-adds of the layers after it up to the next (its norm, activation)."""
    out = [Stage("input", "input", "", tuple(result.input_size))]
    for row in result.layers:
        if row.kind in DRAWN:
            shape = tuple(row.output_shape[1:])
            out.append(Stage(row.name, row.kind, describe(row), shape, row.groups or 1))
        if len(out) > 1:
            out[-1].params += row.params
            out[-1].macs += row.macs
    if len(out) > MAX_STAGES:
        out = collapse(by_block(out))
    return out


def by_block(boxes: list[Stage]) -> list[Stage]:
    """The layers of each block (names such as layer3.4.conv2: the block layer3.4) as one box with
    the block's output, its layers listed ("block: conv 1x1/1, conv 3x3/1, conv 1x1/1")."""
    out: list[Stage] = []
    for b in boxes:
        parts = b.name.split(".")
        block = ".".join(parts[:2]) if len(parts) > 2 else None
        if block and out and out[-1].name == block:
            last = out[-1]
            last.what += f", {b.what}"
            last.shape, last.params, last.macs = b.shape, last.params + b.params, last.macs + b.macs
        elif block:
            out.append(Stage(block, b.kind, f"block: {b.what}", b.shape, b.groups, b.params, b.macs))
        else:
            out.append(b)
    return out


def collapse(boxes: list[Stage]) -> list[Stage]:
    """Runs of consecutive boxes of the same kind, description and shape as one box "x k" (named
    by its first and last)."""
    out: list[Stage] = []
    for b in boxes:
        last = out[-1] if out else None
        if last and (last.kind, last.what, last.shape, last.groups) == (b.kind, b.what, b.shape, b.groups):
            last.repeat += 1
            last.params += b.params
            last.macs += b.macs
            last.name = f"{last.name.split(' .. ')[0]} .. {b.name}"
        else:
            out.append(Stage(**vars(b)))
    for b in out:
        if b.repeat > 1:
            b.what += f" x {b.repeat}"
    return out


def count(n: float) -> str:
    """156, 61.1K, 2.3M: a count in three digits at most."""
    for unit in ("", "K", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" or n >= 100 else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}T"


def _size(n: int, scale: float, base: float = 8) -> float:
    return base + scale * math.log2(max(n, 1))


def draw_maps(result: Analysis, title: str) -> str:
    """The SVG text of the picture."""
    boxes = stages(result)
    tallest = max(_box(b)[1] + _box(b)[2] for b in boxes)
    top = 34 + (tallest if any(b.groups > 1 for b in boxes) else 0)  # room for a second tower
    bottom = top + tallest  # the boxes stand on one line
    c = Canvas()
    c.text(8, 16, title, size=13, anchor="start", bold=True)
    x, previous = 14.0, None
    for b in boxes:
        thick, height, depth = _box(b)
        words = [
            b.label,
            b.what,
            f"{count(b.params)} params" if b.params else "",
            f"{count(b.macs)} MACs" if b.macs else "",
        ]
        column = max(thick + depth, max(len(w) for w in words) * 5.4) + 22
        left = x + (column - thick - depth) / 2
        if previous is not None:
            c.line([(previous, bottom - 14), (left - 2, bottom - 14)])
        if b.kind == "fc" or len(b.shape) == 1:
            c.rect(left, bottom - height, thick, height, FILL["fc"])
        else:
            for tower in range(b.groups if b.groups <= 2 else 1):
                _cuboid(c, left, bottom - tower * (height + depth + 10), thick, height, depth, FILL.get(b.kind, "#ddd"))
        towers = b.groups if 1 < b.groups <= 2 else 1
        label_y = bottom - towers * (height + depth + 10) + 2
        c.text(x + column / 2, label_y, b.label, size=9.5, bold=True)
        for i, word in enumerate(w for w in words[1:] if w):
            c.text(x + column / 2, bottom + 14 + 12 * i, word, size=9)
        previous = left + thick + depth / 2
        x += column
    return c.svg(title)


def _box(b: Stage) -> tuple[float, float, float]:
    """Thickness (channels), height (rows) and oblique depth (columns) of a box, in pixels."""
    if len(b.shape) == 1:
        return 10.0, _size(b.shape[0], 9, 10), 0.0
    ch, h, w = b.shape
    return _size(ch // b.groups, 3.2, 3), _size(h, 11, 10), 0.45 * _size(w, 11, 10)


def _cuboid(c: Canvas, x: float, bottom: float, thick: float, height: float, depth: float, fill: str) -> None:
    """A box seen from the front-right and above: front face, top, side."""
    top = bottom - height
    c.polygon([(x, top), (x + depth, top - depth), (x + thick + depth, top - depth), (x + thick, top)], fill)
    c.polygon(
        [(x + thick, top), (x + thick + depth, top - depth), (x + thick + depth, bottom - depth), (x + thick, bottom)],
        fill,
    )
    c.rect(x, top, thick, height, fill)
