"""Data augmentation on a small training set: none, flips and crops, and richer augmentation."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import combine, finals, gap, lower_verdict, pct, points, test_error


@experiment(
    "augmentation",
    "Data augmentation reduces overfitting on a small training set: flips and crops "
    "shrink the train-test gap and lower the test error; richer augmentation more so",
)
def augmentation(x: Setup) -> Outcome:
    small = x.small
    # AdamW one-cycle, so that every arm has converged by the end (with SGD at a constant rate the
    # augmented arms were still far from trained after 20 epochs, and scored worse for it)
    settings = dict(
        CIFAR_SMALL,
        train_per_class=250 if small else 1000,
        epochs=30 if small else 100,
        optimizer="adamw",
        lr=3e-3,
        weight_decay=5e-4,
        schedule="onecycle",
        model_kwargs={"width": 0.5} if small else {},
    )
    choices = {"none": (), "flip+crop": ("flip", "crop"), "flip+crop+jitter+scale": ("flip", "crop", "jitter", "scale")}
    arms = [Arm(name, "cnn4", settings={**settings, "augment": aug}) for name, aug in choices.items()]
    runs = x.train(arms)
    gaps = {a.label: finals(runs, a.label, gap) for a in arms}
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    parts = [lower_verdict(gaps["flip+crop"], gaps["none"]), lower_verdict(err["flip+crop"], err["none"])]
    numbers = "train-test gap / test error: " + ", ".join(f"{n} {points(gaps[n])} / {pct(err[n])}" for n in choices)
    table = standard_table(arms, runs, lambda a: {"train - test accuracy": points(gaps[a.label])})
    return x.outcome(
        arms,
        runs,
        table,
        combine(parts),
        numbers,
        [
            curves(runs, "training accuracy", lambda r: r["train_top1"]),
            curves(runs, "test accuracy", lambda r: r["test_top1"]),
        ],
    )
