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
from .verdicts import Finding, Part, band, both, finals, pct


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


# (activation std ratio layer 10 / layer 1, test accuracy in %): where each part holds and where it fails
BANDS = {
    "normal": (((0, 1e-3), (0, 20)), ((0, 0.1), (0, 50))),
    "xavier": (((0.005, 0.5), (80, 100)), ((0, 0.9), (50, 100))),
    "he": (((0.5, 2), (90, 100)), ((0.1, 10), (80, 100))),
}


@experiment(
    "init",
    "With weights drawn too small the signal of a deep network vanishes and it does not learn; Xavier's scale, "
    "derived for symmetric activations, makes a ReLU network's signal shrink layer by layer (by \u221a2 per layer), "
    "He's keeps it constant, and both train (10-layer ReLU MLP)",
    "Glorot & Bengio 2010, Section 4.2; He et al. 2015, Section 2.2",
    [
        Part(
            "N(0, 0.01^2): the signal vanishes and the network does not learn",
            "held if layer 10's activation std at init is under 0.1 % of layer 1's and the test accuracy under "
            "20 %; did not hold if the std ratio is above 10 % or the accuracy above 50 %",
        ),
        Part(
            "Xavier: the signal shrinks with depth, and the network trains",
            "held if the ratio is between 0.5 % and 50 % ((1/\u221a2)^9 = 4.4 %) and the test accuracy above 80 %; "
            "did not hold if the ratio is above 90 % or the accuracy under 50 %",
        ),
        Part(
            "He: the signal keeps its scale, and the network trains",
            "held if the ratio is between 0.5 and 2 and the test accuracy above 90 %; did not hold if the ratio is "
            "outside 0.1-10 or the accuracy under 80 %",
        ),
    ],
    seeds=3,
)
def init(x: Setup) -> Outcome:
    small = x.small
    settings = dict(
        MNIST_DEEP_MLP, **(MNIST_SMALL if small else {}), model_kwargs={"hidden": [256] * 10, "activation": "relu"}
    )
    arms = [Arm(scheme, "mlp", "mnist", {**settings, "init": scheme}) for scheme in ("normal", "xavier", "he")]
    stats = {f"{a.label}-seed{s}": activation_std_at_init(x, a, s) for a in arms for s in range(x.seeds)}
    runs = x.train(arms)
    shrink = {k: s[-1]["activation_std"] / s[0]["activation_std"] for k, s in stats.items()}

    def judge(runs: dict) -> list[Finding]:
        found = []
        for scheme, (held, fails) in BANDS.items():
            keys = [k for k in runs if k.rsplit("-seed", 1)[0] == scheme]
            ratio = statistics.median(shrink[k] for k in keys)
            acc = finals(runs, scheme, lambda r: 100 * r["test_top1"])
            verdict = both(band(ratio, held[0], fails[0]), band(statistics.mean(acc), held[1], fails[1]))
            found.append(Finding(verdict, f"{scheme}: std layer 10 / layer 1 {ratio:.2g}, test accuracy {pct(acc)}"))
        return found

    def first_to_last(arm: Arm, key: str) -> str:
        s = stats[f"{arm.label}-seed0"]
        return f"{s[0][key]:.3g} -> {s[-1][key]:.3g}"

    table = standard_table(
        arms,
        runs,
        lambda a: {
            "activation std, layer 1 -> 10": first_to_last(a, "activation_std"),
            "weight gradient norm, layer 1 -> 10": first_to_last(a, "grad_norm"),
        },
    )
    layers = {
        a.label: ([r["layer"] for r in s], [r["activation_std"] for r in s])
        for a in arms
        for s in [stats[f"{a.label}-seed0"]]
    }
    return x.outcome(
        arms,
        runs,
        table,
        judge,
        [
            Panel("hidden layer", "activation std at init (seed 0)", layers, logy=True),
            curves(runs, "test accuracy", lambda r: r["test_top1"]),
        ],
        stats,
    )
