"""1x1 reductions in an inception module (Szegedy et al. 2014, Section 4): multiply-adds and
accuracy with and without them."""

from __future__ import annotations

import statistics

from torch import nn

from ..analysis import analyze
from ..models import InceptionModule
from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, model_cost, standard_table
from .verdicts import HELD, INCONCLUSIVE, NOT_HELD, finals, pct, test_error


def inception_3a_macs() -> dict:
    """Multiply-adds of GoogLeNet's inception (3a) on its 28x28x192 input, with the paper's 1x1
    reductions (Fig. 2b, Table 1) and without them (Fig. 2a, same output widths)."""
    out = {}
    for label, module in (
        ("naive", InceptionModule(192, 64, None, 128, None, 32, None, naive=True)),
        ("with 1x1 reductions", InceptionModule(192, 64, 96, 128, 16, 32, 32)),
    ):
        out[label] = analyze(nn.Sequential(module), (192, 28, 28)).totals["macs"]
    return out


@experiment(
    "bottleneck",
    "1x1 reductions before the 3x3 and 5x5 convolutions of an inception module save most "
    "of its multiply-adds at little or no cost in accuracy (Szegedy et al. 2014, Section 4)",
)
def bottleneck(x: Setup) -> Outcome:
    small = x.small
    settings = dict(CIFAR_SMALL, epochs=20 if small else 60, optimizer="sgd", lr=0.02, momentum=0.9, init="he")
    if not small:
        settings.pop("train_per_class")
    arms = [
        Arm(label, "inception_cifar", settings={**settings, "model_kwargs": {"naive": naive}})
        for label, naive in (("naive", True), ("with 1x1 reductions", False))
    ]
    cost = {a.label: model_cost(x, a) for a in arms}
    googlenet = inception_3a_macs()
    runs = x.train(arms)
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    ratio = cost["with 1x1 reductions"]["macs"] / cost["naive"]["macs"]
    worse = statistics.mean(err["with 1x1 reductions"]) - statistics.mean(err["naive"])
    verdict = HELD if ratio <= 0.5 and worse <= 2 else NOT_HELD if ratio > 0.8 or worse > 5 else INCONCLUSIVE
    numbers = (
        f"multiply-adds with reductions {100 * ratio:.0f} % of naive ({cost['with 1x1 reductions']['macs'] / 1e6:.2f}M "
        f"vs {cost['naive']['macs'] / 1e6:.2f}M), test error {pct(err['with 1x1 reductions'])} vs "
        f"{pct(err['naive'])}; GoogLeNet's inception (3a): {googlenet['with 1x1 reductions'] / 1e6:.0f}M vs "
        f"{googlenet['naive'] / 1e6:.0f}M multiply-adds"
    )
    table = standard_table(
        arms,
        runs,
        lambda a: {
            "parameters": f"{cost[a.label]['params']:,}",
            "multiply-adds": f"{cost[a.label]['macs'] / 1e6:.2f}M",
            "GoogLeNet (3a) multiply-adds": f"{googlenet[a.label] / 1e6:.1f}M",
        },
    )
    return x.outcome(
        arms,
        runs,
        table,
        verdict,
        numbers,
        [curves(runs, "test error", lambda r: 1 - r["test_top1"])],
        {"cifar": cost, "googlenet_3a_macs": googlenet},
    )
