"""Dropout in the fully connected layers (Srivastava et al. 2014): an MLP on few MNIST digits with
and without dropout 0.5."""

from __future__ import annotations

from .base import Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import finals, gap, lower_verdict, pct, points, test_error


@experiment(
    "dropout",
    "Dropout in the fully connected layers reduces overfitting: a smaller gap between "
    "training and test accuracy (Srivastava et al. 2014; AlexNet's fc6/fc7)",
)
def dropout(x: Setup) -> Outcome:
    small = x.small
    settings = dict(
        train_per_class=100 if small else 1000,
        epochs=40 if small else 100,
        batch_size=64,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        weight_decay=0.0,
        schedule="none",
        augment=(),
    )
    hidden = [1024, 1024] if small else [4096, 4096]
    arms = [
        Arm(f"dropout {p}", "mlp", "mnist", {**settings, "model_kwargs": {"hidden": hidden, "dropout": p}})
        for p in (0.0, 0.5)
    ]
    runs = x.train(arms)
    gaps = {a.label: finals(runs, a.label, gap) for a in arms}
    verdict = lower_verdict(gaps["dropout 0.5"], gaps["dropout 0.0"])
    numbers = (
        f"train-test accuracy gap {points(gaps['dropout 0.0'])} without dropout, {points(gaps['dropout 0.5'])} "
        f"with 0.5 (test error {pct(finals(runs, 'dropout 0.0', test_error))} vs "
        f"{pct(finals(runs, 'dropout 0.5', test_error))})"
    )
    table = standard_table(arms, runs, lambda a: {"train - test accuracy": points(gaps[a.label])})
    return x.outcome(
        arms,
        runs,
        table,
        verdict,
        numbers,
        [
            curves(runs, "training accuracy", lambda r: r["train_top1"]),
            curves(runs, "test accuracy", lambda r: r["test_top1"]),
        ],
    )
