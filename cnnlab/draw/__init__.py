"""Pictures of networks in the lectures' styles, from the model itself, with the analyser's
numbers: `maps` (LeNet/AlexNet's stacks of feature maps; maps.py), `blocks` (VGG/GoogLeNet/
ResNet's rows of layers and blocks; blocks.py) and `graph` (a layered data-flow graph of any
module; graph.py), as SVG text, and written as SVG, PNG or PDF."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..analysis import analyze
from ..errors import CnnlabError
from ..factory import create_model, load_model
from ..files import atomic_file
from ..registry import get_model_info
from .blocks import draw_blocks
from .graph import draw_graph
from .maps import draw_maps

STYLES = ("maps", "blocks", "graph")
FORMATS = (".svg", ".png", ".pdf")


def draw(model_or_name: nn.Module | str, input_size: tuple | None = None, style: str = "maps") -> str:
    """The picture of a model (an nn.Module, a zoo name or a run directory) as SVG text.
    `input_size` is (C, H, W) (default: the model's own, free sizes as in the registry)."""
    if style not in STYLES:
        raise CnnlabError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    model, title = _model(model_or_name)
    size = _input_size(model, title, input_size)
    model.eval()
    heading = f"{title} ({'x'.join(map(str, size))} input)"
    if style == "maps":
        return draw_maps(analyze(model, size), heading)
    if style == "blocks":
        return draw_blocks(model, analyze(model, size), heading)
    return draw_graph(model, size, heading)


def save(svg: str, path: str | os.PathLike) -> Path:
    """Write the picture atomically: SVG as it is, PNG and PDF converted by CairoSVG."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in FORMATS:
        raise CnnlabError(f"{path}: the picture is written as {', '.join(FORMATS)}; name the file so")
    with atomic_file(path, path.suffix) as tmp:
        if kind == ".svg":
            Path(tmp).write_text(svg, encoding="utf-8")
        else:
            import cairosvg  # the optional extra cnnlab[draw]

            convert = cairosvg.svg2png if kind == ".png" else cairosvg.svg2pdf
            kwargs = {"scale": 2.0} if kind == ".png" else {}
            convert(bytestring=svg.encode(), write_to=str(tmp), **kwargs)
    return path


def _model(source: nn.Module | str) -> tuple[nn.Module, str]:
    if isinstance(source, nn.Module):
        return source, getattr(source, "model_name", type(source).__name__)
    if Path(source).exists():
        model = load_model(source)
        return model, f"{model.model_name} ({Path(source).name})"
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        return create_model(source), source


def _input_size(model: nn.Module, name: str, given: tuple | None) -> tuple:
    if given is not None:
        return tuple(given)
    own = getattr(model, "input_size", None)
    try:
        registry = get_model_info(getattr(model, "model_name", name)).input_size
    except CnnlabError:
        registry = None
    if own is None and registry is None:
        raise CnnlabError(f"{name} does not say what input it takes; give input_size, e.g. (3, 32, 32)")
    own = own or registry
    return tuple(o if o is not None else r for o, r in zip(own, registry or own))
