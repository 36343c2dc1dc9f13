"""Changing a built model for training: re-initialise its weights, freeze the layers a
transfer-learning strategy keeps fixed, set every dropout rate, and find its classifier."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnlabError

INITS = ("paper", "normal", "xavier", "he")
# The lectures' transfer-learning choices: train only a new classifier on fixed features; also
# the top layers; everything; or ignore the weights and train from a fresh initialisation
STRATEGIES = ("feature-extractor", "fine-tune-top", "fine-tune-all", "from-scratch")


@torch.no_grad()
def initialize(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear weights: N(0, 0.01^2), Xavier/Glorot or He/MSR (fan-in);
    biases to zero. "paper" keeps what the builder did."""
    if scheme == "paper":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            if scheme == "normal":
                nn.init.normal_(m.weight, 0.0, 0.01)
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def set_dropout(model: nn.Module, rate: float) -> None:
    """Every Dropout layer's rate."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = rate


def head_name(model: nn.Module) -> str:
    """The classifier: the last linear layer (the last layer with parameters if there is none)."""
    named = [(n, m) for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    linear = [n for n, m in named if isinstance(m, nn.Linear)]
    return linear[-1] if linear else named[-1][0]


def leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The named modules without children, in definition order."""
    return [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]


def freeze(model: nn.Module, strategy: str, freeze_until: str | None = None) -> list[nn.Module]:
    """Freeze the layers the strategy keeps fixed; returns them (they must stay in eval mode, so
    batch-norm statistics and dropout do not change either). feature-extractor: all but the
    classifier; fine-tune-top: the first two thirds of the weighted layers; freeze_until: every
    layer up to and including that module (a name from named_modules, e.g. layer3)."""
    layers = leaves(model)
    names = [n for n, _ in layers]
    if freeze_until:
        hits = [i for i, n in enumerate(names) if n == freeze_until or n.startswith(freeze_until + ".")]
        if not hits:
            tops = sorted({n.split(".")[0] for n in names}, key=[n.split(".")[0] for n in names].index)
            raise CnnlabError(
                f"freeze until {freeze_until!r}: {model.model_name} has no such layer; "
                f"its top-level layers: {', '.join(tops)}"
            )
        cut = hits[-1] + 1
    elif strategy == "feature-extractor":
        head = head_name(model)
        cut = next(i for i, n in enumerate(names) if n == head or n.startswith(head + "."))
    elif strategy == "fine-tune-top":
        weighted = [i for i, (_, m) in enumerate(layers) if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))]
        cut = weighted[len(weighted) * 2 // 3]
    else:
        return []
    frozen = [m for _, m in layers[:cut]]
    for m in frozen:
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
    return frozen
