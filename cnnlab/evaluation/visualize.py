"""What a trained network has learned, as pictures: the first layer's filters (AlexNet's Fig. 3)
and a layer's feature maps for one image."""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import CnnlabError
from ..factory import load_model
from ..runs import read_config, whitening
from .plots import grid_png
from .runs import image_input


def first_conv(model: nn.Module) -> tuple[str, nn.Module]:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) or hasattr(m, "full_weight"):
            return name, m
    raise CnnlabError(
        f"{type(model).__name__} has no convolution: no filters to show, and feature maps only "
        "of a --layer NAME that outputs (N, C, H, W)"
    )


def first_filters(model: nn.Module) -> tuple[str, nn.Module, Tensor]:
    """The first convolution, its name and its filters (a partial convolution's with the kernels
    it leaves out as zeros)."""
    name, conv = first_conv(model)
    weight = conv.full_weight() if hasattr(conv, "full_weight") else conv.weight
    return name, conv, weight.detach()


def visualize_filters(run: str | Path, out: Path) -> Path:
    """The first convolution's filters as a grid (AlexNet paper, Fig. 3), RGB where they are."""
    name, conv, weight = first_filters(load_model(run))
    if weight.shape[1] not in (1, 3):  # show each input channel separately
        weight = weight.flatten(0, 1).unsqueeze(1)
    return grid_png(weight, out, f"{name}: {tuple(conv.weight.shape)}")


@torch.no_grad()
def visualize_feature_maps(run: str | Path, image: str | Path, layer: str | None, out: Path) -> Path:
    """The feature maps of `layer` (default: the first convolution) for one image file."""

    cfg = read_config(run)
    model = load_model(run)
    modules = dict(model.named_modules())
    layer = layer or first_conv(model)[0]
    if layer not in modules or not layer:
        convs = [n for n, m in modules.items() if "Conv" in type(m).__name__ and not list(m.children())]
        close = ([n for n in modules if n and layer.split(".")[-1] in n] or difflib.get_close_matches(layer, modules))[
            :5
        ]
        raise CnnlabError(
            f"no layer {layer!r} in {cfg['model']}"
            + (
                f"; e.g. {', '.join(close)}"
                if close
                else f"; its convolutions: {', '.join(convs[:8])}{', ...' if len(convs) > 8 else ''}"
            )
        )
    x = image_input(image, cfg, whitening(run, cfg, "cpu"))
    seen = {}
    handle = modules[layer].register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    try:
        model(x)
    finally:
        handle.remove()
    maps = seen["out"]
    if not isinstance(maps, Tensor) or maps.ndim != 4:
        raise CnnlabError(f"layer {layer!r} outputs {tuple(getattr(maps, 'shape', ()))}, not feature maps")
    return grid_png(maps[0, :64].unsqueeze(1), out, f"{layer}: {tuple(maps.shape[1:])} (first 64 maps)")
