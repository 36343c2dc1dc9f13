"""Initialisation scale (Glorot & Bengio 2010; He et al. 2015): a 10-layer ReLU MLP started from
N(0, 0.01^2), Xavier and He; activation spread at initialisation, then training."""

from __future__ import annotations

import statistics

import torch

from ..factory import create_model
from ..models.adapt import initialize
from ..train.stats import layer_statistics
from .base import (
    MNIST_DEEP_MLP,
    MNIST_SMALL,
    Arm,
    Outcome,
    Panel,
    Setup,
    curves,
    experiment,
    standard_table,
    test_batch,
)
from .verdicts import HELD, INCONCLUSIVE, NOT_HELD, finals, pct


def activation_std_at_init(x: Setup, arm: Arm, seed: int) -> list[dict]:
    """Per hidden layer of `arm`'s freshly initialised model, on 500 test images: the std of
    the activation output and the norm of the gradient reaching the layer's weights."""
    cfg = x.config(arm, seed)
    torch.manual_seed(cfg.seed)  # the same draw as the training run's
    model = create_model(cfg.model, **cfg.model_kwargs)
    initialize(model, cfg.init)
    stats = layer_statistics(model, *test_batch(cfg, 500))
    acts = [r for r in stats if r["type"] not in ("Linear", "Conv2d", "Dropout", "Flatten")]
    linears = [r for r in stats if r["type"] == "Linear"]
    return [
        {"layer": i + 1, "activation_std": a["out_std"], "grad_norm": w["grad_norm"]}
        for i, (a, w) in enumerate(zip(acts, linears))
    ]


@experiment(
    "init",
    "Initialisation scale decides whether a deep plain network trains at all: with "
    "N(0, 0.01^2) the activations and gradients of a 10-layer ReLU network vanish and it does "
    "not learn; Xavier shrinks them slowly; He keeps them (Glorot & Bengio 2010; He et al. 2015)",
)
def init(x: Setup) -> Outcome:
    small = x.small
    settings = dict(
        MNIST_DEEP_MLP, **(MNIST_SMALL if small else {}), model_kwargs={"hidden": [256] * 10, "activation": "relu"}
    )
    arms = [Arm(scheme, "mlp", "mnist", {**settings, "init": scheme}) for scheme in ("normal", "xavier", "he")]
    stats = {a.label: activation_std_at_init(x, a, 0) for a in arms}
    runs = x.train(arms)
    shrink = {a: s[-1]["activation_std"] / s[0]["activation_std"] for a, s in stats.items()}
    acc = {a.label: finals(runs, a.label, lambda r: 100 * r["test_top1"]) for a in arms}
    vanished = shrink["normal"] < 1e-3 and statistics.mean(acc["normal"]) < 20
    trains = statistics.mean(acc["he"]) > 90 and shrink["he"] > 0.1
    verdict = HELD if vanished and trains else NOT_HELD if statistics.mean(acc["normal"]) > 50 else INCONCLUSIVE
    numbers = "; ".join(
        f"{a}: activation std layer 10 / layer 1 = {shrink[a]:.2g}, test accuracy {pct(acc[a])}" for a in stats
    )

    def first_to_last(arm: Arm, key: str) -> str:
        return f"{stats[arm.label][0][key]:.3g} -> {stats[arm.label][-1][key]:.3g}"

    table = standard_table(
        arms,
        runs,
        lambda a: {
            "activation std, layer 1 -> 10": first_to_last(a, "activation_std"),
            "weight gradient norm, layer 1 -> 10": first_to_last(a, "grad_norm"),
        },
    )
    layers = {a: ([r["layer"] for r in s], [r["activation_std"] for r in s]) for a, s in stats.items()}
    return x.outcome(
        arms,
        runs,
        table,
        verdict,
        numbers,
        [
            Panel("hidden layer", "activation std at init", layers, logy=True),
            curves(runs, "test accuracy", lambda r: r["test_top1"]),
        ],
        stats,
    )
