"""Batch normalisation (Ioffe & Szegedy 2015): the same network with and without BN at three
learning rates."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import combine, finals, lower_verdict, pct, train_error


@experiment(
    "batchnorm",
    "Batch normalisation speeds training and tolerates higher learning rates: at every "
    "learning rate the network with BN reaches a lower training error (Ioffe & Szegedy 2015)",
)
def batchnorm(x: Setup) -> Outcome:
    small = x.small
    settings = dict(CIFAR_SMALL, epochs=6 if small else 30, optimizer="sgd", momentum=0.9, nesterov=False)
    if not small:
        settings.pop("train_per_class")
    lrs = (0.01, 0.05, 0.25)
    arms = [
        Arm(
            f"{'BN' if bn else 'no BN'} lr {lr}",
            "cnn4",
            settings={**settings, "lr": lr, "model_kwargs": {"batchnorm": bn, **({"width": 0.5} if small else {})}},
        )
        for lr in lrs
        for bn in (False, True)
    ]
    runs = x.train(arms)
    parts = [
        lower_verdict(finals(runs, f"BN lr {lr}", train_error), finals(runs, f"no BN lr {lr}", train_error))
        for lr in lrs
    ]
    numbers = (
        "; ".join(
            f"lr {lr}: {pct(finals(runs, f'no BN lr {lr}', train_error))} without BN, "
            f"{pct(finals(runs, f'BN lr {lr}', train_error))} with"
            for lr in lrs
        )
        + " training error"
    )
    return x.outcome(
        arms,
        runs,
        standard_table(arms, runs),
        combine(parts),
        numbers,
        [curves(runs, "training error", lambda r: 1 - r["train_top1"])],
    )
