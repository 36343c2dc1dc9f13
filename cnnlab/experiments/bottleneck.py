"""1x1 reductions in an inception module (Szegedy et al. 2014, Section 4): multiply-adds and
accuracy with and without them."""

from __future__ import annotations

import statistics

from torch import nn

from ..analysis import analyze
from ..models import InceptionModule
from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, model_cost, standard_table
from .verdicts import Finding, Part, at_most, finals, pct, test_error

NAIVE, REDUCED = "naive", "with 1x1 reductions"


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
    "1x1 convolutions \u201care used to compute reductions before the expensive 3x3 and 5x5 convolutions\u201d: "
    "without them even a modest number of 5x5 filters is prohibitively expensive; with them the module keeps its "
    "width at a fraction of the cost, without losing accuracy",
    "Szegedy et al. 2014, Section 4 and Fig. 2",
    [
        Part(
            "the reductions save most of the multiply-adds",
            "held if the module with reductions needs at most 50 % of the naive one's multiply-adds (the "
            "analyser's count); did not hold above 80 %",
        ),
        Part(
            "at little or no cost in accuracy",
            "held if its mean test error is at most 2 points above the naive module's; did not hold if more than "
            "5 points above; inconclusive in between",
        ),
    ],
)
def bottleneck(x: Setup) -> Outcome:
    small = x.small
    settings = dict(CIFAR_SMALL, epochs=20 if small else 60, optimizer="sgd", lr=0.02, momentum=0.9, init="he")
    if not small:
        settings.pop("train_per_class")
    arms = [
        Arm(label, "inception_cifar", settings={**settings, "model_kwargs": {"naive": naive}})
        for label, naive in ((NAIVE, True), (REDUCED, False))
    ]
    cost = {a.label: model_cost(x, a) for a in arms}
    googlenet = inception_3a_macs()
    runs = x.train(arms)
    ratio = cost[REDUCED]["macs"] / cost[NAIVE]["macs"]

    def judge(runs: dict) -> list[Finding]:
        err = {a.label: finals(runs, a.label, test_error) for a in arms}
        worse = statistics.mean(err[REDUCED]) - statistics.mean(err[NAIVE])
        return [
            Finding(
                at_most(ratio, 0.5, 0.8),
                f"multiply-adds with reductions {100 * ratio:.0f} % of naive ({cost[REDUCED]['macs'] / 1e6:.2f}M "
                f"vs {cost[NAIVE]['macs'] / 1e6:.2f}M; GoogLeNet's inception (3a): "
                f"{googlenet[REDUCED] / 1e6:.0f}M vs {googlenet[NAIVE] / 1e6:.0f}M)",
            ),
            Finding(
                at_most(worse, 2, 5),
                f"test error {pct(err[REDUCED])} vs {pct(err[NAIVE])}",
            ),
        ]

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
        judge,
        [curves(runs, "test error", lambda r: 1 - r["test_top1"])],
        {"cifar": cost, "googlenet_3a_macs": googlenet},
    )
