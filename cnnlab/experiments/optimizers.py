"""Optimisers at their usual learning rates: plain mini-batch SGD against momentum, Nesterov,
Adagrad, RMSProp and Adam."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import combine, finals, lower_verdict, mean_std


@experiment(
    "optimizers",
    "Momentum, Nesterov momentum and the adaptive methods (Adagrad, RMSProp, Adam) all "
    "train faster than plain mini-batch SGD at the usual learning rates",
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
    loss = {a.label: finals(runs, a.label, lambda r: r["train_loss"]) for a in arms}
    parts = [lower_verdict(loss[name], loss["sgd"], margin=0.02) for name in choices if name != "sgd"]
    numbers = "final training loss " + ", ".join(f"{n} {mean_std(loss[n], digits=3)}" for n in choices)
    table = standard_table(arms, runs, lambda a: {"final training loss": mean_std(loss[a.label], digits=3)})
    return x.outcome(
        arms,
        runs,
        table,
        combine(parts),
        numbers,
        [curves(runs, "training loss", lambda r: r["train_loss"], logy=True)],
    )
