"""The VGG/GoogLeNet/ResNet figures: one row per layer or block, top to bottom, in the papers'
words ("3x3 conv, 128, /2"): an inception module as its four branches and their concatenation,
a residual block as its convolutions with the shortcut beside them (identity, zero-padded or a
projection), runs of like rows folded ("x 36"), each row's output shape beside it."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..analysis.result import Analysis, LayerRow
from .svg import FILL, Canvas

BRANCHED = ("InceptionModule",)
RESIDUAL = ("BasicBlock", "Bottleneck")
WIDTH, LINE = 330.0, 22.0


@dataclass
class Row:
    """One row of the figure: a layer, an inception module or a residual block."""

    name: str
    kind: str  # layer, branched, residual, skip (an FCN's scores of a pool layer, added further down)
    lines: list[list[str]] = field(default_factory=list)  # layer: [[text]]; branched: a list per branch
    shortcut: str = ""  # residual: identity, projection ..., or "" for none (a plain net's block)
    shape: tuple = ()
    fill: str = FILL["conv"]
    repeat: int = 1
    tap: str = ""  # an FCN's pool layer whose output a skip link takes ("pool3", "pool4")
    source: str = ""  # skip: the pool layer it takes

    def same(self, other: Row) -> bool:
        return (self.kind, self.lines, self.shortcut, self.shape) == (
            other.kind,
            other.lines,
            other.shortcut,
            other.shape,
        )


def words(row: LayerRow) -> str:
    """A layer as the papers write it: "3x3 conv, 64, /2", "max pool, /2", "fc 1000"."""
    out = row.output_shape[1] if len(row.output_shape) > 1 else ""
    if row.kind == "fc":
        return f"fc {out}"
    if "Transpose" in row.type:  # upsampling: the stride multiplies the size
        return f"{row.kernel[0]}x{row.kernel[1]} transposed conv, {out}, x{row.stride[0]}"
    stride = f", /{row.stride[0]}" if row.stride and row.stride[0] > 1 else ""
    if row.kind == "conv":
        k = f"{row.kernel[0]}x{row.kernel[1]}"
        return f"{k} conv, {out}{stride}" + (f", {row.groups} groups" if (row.groups or 1) > 1 else "")
    if row.type.startswith("Adaptive"):
        return "global avg pool" if row.output_shape[-1] == 1 else "adaptive avg pool"
    kind = {"MaxPool2d": "max pool", "AvgPool2d": "avg pool"}.get(row.type, row.type)
    return f"{row.kernel[0]}x{row.kernel[1]} {kind}{stride}" if row.kernel else kind


def rows(model: nn.Module, result: Analysis) -> list[Row]:
    """The figure's rows, from the analyser's layers grouped by the block each belongs to."""
    modules = dict(model.named_modules())
    out: list[Row] = []
    for r in result.layers:
        block = next((p for p in _prefixes(r.name) if type(modules.get(p)).__name__ in BRANCHED + RESIDUAL), None)
        if block is None:
            if r.kind in ("conv", "pool", "fc"):
                fill = FILL.get(r.kind, FILL["other"])
                out.append(Row(r.name, "layer", [[words(r)]], shape=tuple(r.output_shape[1:]), fill=fill))
            continue
        mod = modules[block]
        if not out or out[-1].name != block:
            kind = "branched" if type(mod).__name__ in BRANCHED else "residual"
            out.append(Row(block, kind, shortcut=_shortcut(mod, modules, block) if kind == "residual" else ""))
        row = out[-1]
        row.shape = tuple(r.output_shape[1:]) if row.kind == "residual" or not row.shape else row.shape
        part = r.name[len(block) + 1 :].split(".")[0]
        if r.kind in ("conv", "pool") and part not in ("downsample", "shortcut"):
            if row.kind == "branched":
                index = int(part.removeprefix("branch")) - 1 if part.startswith("branch") else 0
                while len(row.lines) <= index:
                    row.lines.append([])
                row.lines[index].append(words(r))
            else:
                row.lines.append([words(r)])
        if row.kind == "branched":
            row.shape = (mod.out_channels, *r.output_shape[2:])
    return collapse(skip_links(model, out))


def skip_links(model: nn.Module, out: list[Row]) -> list[Row]:
    """An FCN's skip links (Long et al., Fig. 3): its pool3 and pool4 rows marked as taps, and the
    scores taken from them as skip rows, drawn as arcs to the sum with the upsampled scores."""
    for pool in ("pool3", "pool4"):
        index = getattr(model, f"{pool}_index", None)
        for r in out:
            if index is not None and r.name == f"features.{index}":
                r.tap = pool
            if r.name == f"score_{pool}":
                r.kind, r.source = "skip", pool
    return out


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(len(parts) - 1, 0, -1)]


def _shortcut(block: nn.Module, modules: dict, name: str) -> str:
    if not getattr(block, "shortcut", True):
        return ""
    down = getattr(block, "downsample", None)
    if down is None:
        return "identity"
    if type(down).__name__ == "ShortcutA":
        return f"identity, zero-padded, /{down.stride}"
    conv = next((m for m in down.modules() if isinstance(m, nn.Conv2d)), None)
    return f"projection 1x1 conv, /{conv.stride[0]}" if conv is not None else "projection"


def collapse(out: list[Row]) -> list[Row]:
    """Consecutive identical rows as one row "x k"."""
    folded: list[Row] = []
    for r in out:
        if folded and folded[-1].same(r):
            folded[-1].repeat += 1
            folded[-1].name = f"{folded[-1].name.split(' .. ')[0]} .. {r.name}"
        else:
            folded.append(r)
    return folded


def draw_blocks(model: nn.Module, result: Analysis, title: str) -> str:
    """The SVG text of the figure."""
    c = Canvas()
    c.text(8, 16, title, size=13, anchor="start", bold=True)
    x, y = 150.0, 34.0
    shape = "x".join(map(str, result.input_size))
    c.text(x + WIDTH / 2, y + 10, f"input {shape}", size=10)
    y += 18
    taps: dict[str, float] = {}
    for r in rows(model, result):
        if r.kind == "skip":
            y = _skip(c, r, x, y, taps[r.source], 12 + 24 * (r.source == "pool3"))
            continue
        c.line([(x + WIDTH / 2, y), (x + WIDTH / 2, y + 10)])
        y += 12
        top = y
        y = {"layer": _layer, "branched": _branched, "residual": _residual}[r.kind](c, r, x, y)
        c.text(x + WIDTH + 140, (top + y) / 2 + 4, _shape(r), 9, "start")
        if r.repeat > 1:
            c.text(x - 10, (top + y) / 2 + 4, f"x {r.repeat}", 11, "end", bold=True)
        c.text(x - 10, (top + y) / 2 + (18 if r.repeat > 1 else 4), r.name, 8.5, "end")
        if r.tap:
            taps[r.tap] = (top + y) / 2
    return c.svg(title)


def _shape(r: Row) -> str:
    if len(r.shape) == 3:
        return f"{r.shape[0]}@{r.shape[1]}x{r.shape[2]}"
    return "x".join(map(str, r.shape))


def _layer(c: Canvas, r: Row, x: float, y: float) -> float:
    c.rect(x, y, WIDTH, LINE, r.fill, rx=4)
    c.text(x + WIDTH / 2, y + 15, r.lines[0][0], 10)
    return y + LINE


def _branched(c: Canvas, r: Row, x: float, y: float) -> float:
    n = max(len(r.lines), 1)
    w = (WIDTH - 6 * (n - 1)) / n
    depth = max(len(b) for b in r.lines)
    for i, branch in enumerate(r.lines):
        bx = x + i * (w + 6)
        c.line([(x + WIDTH / 2, y - 2), (bx + w / 2, y + 6)], arrow=False)
        for j, text in enumerate(branch):
            fill = FILL["pool"] if "pool" in text else FILL["conv"]
            c.rect(bx, y + 8 + j * (LINE + 4), w, LINE, fill, rx=4)
            c.text(bx + w / 2, y + 8 + j * (LINE + 4) + 15, text, 8.5)
        c.line([(bx + w / 2, y + 8 + len(branch) * (LINE + 4) - 4), (x + WIDTH / 2, y + 14 + depth * (LINE + 4))])
    bottom = y + 14 + depth * (LINE + 4)
    c.rect(x + WIDTH / 2 - 40, bottom, 80, 18, FILL["other"], rx=9)
    c.text(x + WIDTH / 2, bottom + 13, "concatenate", 9)
    return bottom + 18


def _residual(c: Canvas, r: Row, x: float, y: float) -> float:
    top, mid = y, x + WIDTH / 2
    for i, (text,) in enumerate(r.lines):
        c.rect(x, y, WIDTH, LINE, FILL["conv"], rx=4)
        c.text(mid, y + 15, text, 10)
        y += LINE
        if i < len(r.lines) - 1:
            c.line([(mid, y), (mid, y + 8)])
            y += 8
    if r.shortcut:  # the skip arc from above the block to the sum below it
        right = x + WIDTH + 12
        c.line([(mid, top - 6), (right, top - 6), (right, y + 12), (mid + 9, y + 12)])
        c.text(right + 4, (top + y) / 2 + 3, r.shortcut, 8, "start")
        c.line([(mid, y), (mid, y + 4)], arrow=False)
        c.rect(mid - 8, y + 4, 16, 16, FILL["other"], rx=8)
        c.text(mid, y + 16, "+", 11, bold=True)
        return y + 20
    return y


def _skip(c: Canvas, r: Row, x: float, y: float, tap_y: float, offset: float) -> float:
    """The sum of the upsampled scores above and the scores of a pool layer, which come along an
    arc from that layer's row: "+ score_pool4: 1x1 conv, 21"."""
    mid, right = x + WIDTH / 2, x + WIDTH + offset
    c.line([(mid, y), (mid, y + 6)], arrow=False)
    c.rect(mid - 8, y + 6, 16, 16, FILL["other"], rx=8)
    c.text(mid, y + 18, "+", 11, bold=True)
    c.line([(x + WIDTH, tap_y), (right, tap_y), (right, y + 14), (mid + 9, y + 14)])
    c.text(mid + 14, y + 28, f"{r.name}: {r.lines[0][0]}", 8.5, "start")
    c.text(x - 10, y + 18, f"skip from {r.source}", 8.5, "end")
    return y + 30
