"""Optimisers at their usual learning rates: plain mini-batch SGD against momentum, Nesterov,
Adagrad, RMSProp and Adam."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import LOWER, Part, compare, finals, loss

METHODS = ("momentum", "nesterov", "adagrad", "rmsprop", "adam")


def loss_of(row: dict) -> float:
    return row["train_loss"]


@experiment(
    "optimizers",
    "Momentum and Nesterov's accelerated gradient, and the adaptive methods Adagrad, RMSProp and Adam, train "
    "faster than plain mini-batch SGD, each at its usual learning rate (the same network, data and epochs)",
    "Sutskever et al. 2013; Duchi et al. 2011; Tieleman & Hinton 2012; Kingma & Ba 2015, Section 6.3",
    [
        Part(
            f"{m} ends at a lower training loss than SGD",
            LOWER.format(a=f"{m}'s final training loss", b="SGD's", margin="0.02"),
        )
        for m in METHODS
    ],
    seeds=3,
)
def optimizers(x: Setup) -> Outcome:
    small = x.small
    settings = dict(CIFAR_SMALL, epochs=8 if small else 30, model_kwargs={"width": 0.5} if small else {})
    if not small:
        settings.pop("train_per_class")
    choices = {
        "sgd": dict(optimizer="sgd", lr=0.01, momentum=0.0, nesterov=False),
        "momentum": dict(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=False),
        "nesterov": dict(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True),
        "adagrad": dict(optimizer="adagrad", lr=0.01),
        "rmsprop": dict(optimizer="rmsprop", lr=1e-3, momentum=0.0),
        "adam": dict(optimizer="adam", lr=1e-3),
    }
    arms = [Arm(name, "cnn4", settings={**settings, **opt}) for name, opt in choices.items()]
    runs = x.train(arms)

    def judge(runs: dict) -> list:
        return [compare(runs, m, "sgd", loss_of, "final training loss", 0.02, loss) for m in METHODS]

    table = standard_table(arms, runs, lambda a: {"final training loss": loss(finals(runs, a.label, loss_of))})
    return x.outcome(
        arms,
        runs,
        table,
        judge,
        [curves(runs, "training loss", lambda r: r["train_loss"], logy=True)],
    )
