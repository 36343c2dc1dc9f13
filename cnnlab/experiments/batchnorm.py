"""Batch normalisation (Ioffe & Szegedy 2015): the same network with and without BN at three
learning rates."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import LOWER, Part, compare, train_error

LRS = (0.01, 0.05, 0.25)
TRAINING_ERROR = LOWER.format(a="the BN network's final training error", b="the plain one's", margin="1 point")


@experiment(
    "batchnorm",
    "\u201cBatch Normalization enables higher learning rates\u201d and speeds up training: the network with BN "
    "reaches a lower training error in the same steps, at the usual learning rate and at rates where the network "
    "without it fails",
    "Ioffe & Szegedy 2015, Sections 3.3 and 4.2",
    [Part(f"at lr {lr} the BN network ends with the lower training error", TRAINING_ERROR) for lr in LRS],
    seeds=3,
)
def batchnorm(x: Setup) -> Outcome:
    small = x.small
    settings = dict(CIFAR_SMALL, epochs=6 if small else 30, optimizer="sgd", momentum=0.9, nesterov=False)
    if not small:
        settings.pop("train_per_class")
    lrs = LRS
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

    def judge(runs: dict) -> list:
        # the network without BN failing at a high rate is what the claim says; the BN one must train
        return [
            compare(runs, f"BN lr {lr}", f"no BN lr {lr}", train_error, "training error", must_train=(f"BN lr {lr}",))
            for lr in lrs
        ]

    return x.outcome(
        arms,
        runs,
        standard_table(arms, runs),
        judge,
        [curves(runs, "training error", lambda r: 1 - r["train_top1"])],
    )
