"""Depth with and without shortcuts (He et al. 2016, Fig. 6): plain-20 against plain-56 and ResNet-20
against ResNet-56 on CIFAR-10, by training error."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import LOWER, Part, compare, train_error

TRAINING_ERROR = LOWER.format(
    a="the final training error of the one said to train better", b="the other's", margin="1 point"
)


@experiment(
    "depth",
    "The degradation problem: \u201cthe deeper plain network has higher training error throughout the training "
    "procedure\u201d; with shortcuts the situation is reversed, and the deeper residual network has lower training "
    "error (plain-20/56 and ResNet-20/56 on CIFAR-10)",
    "He et al. 2016, Sections 4.1-4.2 and Fig. 6",
    [
        Part("plain-56 ends with a higher training error than plain-20", TRAINING_ERROR),
        Part("ResNet-56 ends with a lower training error than ResNet-20", TRAINING_ERROR),
    ],
)
def depth(x: Setup) -> Outcome:
    small = x.small
    # Quarter width, batch 32 from lr 0.05 (four times the steps of batch 128 for the same images;
    # at batch 128 and 8 epochs ResNet-56 was behind ResNet-20, 51.2 % vs 48.4 %), cosine; 2,500
    # images for 24 epochs, so that the networks get far enough to differ in what they can fit (on
    # 5,000 images for 12 epochs, the same steps, ResNet-56 was still behind, 40.5 % vs 36.2 %);
    # the claim is about training error, so the test curve uses 1,000 test images
    settings = (
        dict(
            CIFAR_SMALL,
            train_per_class=250,
            epochs=24,
            batch_size=32,
            optimizer="sgd",
            lr=0.05,
            momentum=0.9,
            weight_decay=1e-4,
            schedule="cosine",
            test_per_class=100,
            model_kwargs={"width": 0.25},
        )
        if small
        else {}
    )
    arms = [Arm(name, name, settings=settings) for name in ("plain20", "plain56", "resnet20", "resnet56")]
    runs = x.train(arms)

    def judge(runs: dict) -> list:
        # a deep plain net that never trains is the degradation itself, not a broken arm
        return [
            compare(runs, "plain20", "plain56", train_error, "training error", must_train=("plain20",)),
            compare(runs, "resnet56", "resnet20", train_error, "training error"),
        ]

    return x.outcome(
        arms,
        runs,
        standard_table(arms, runs),
        judge,
        [
            curves(runs, "training error", lambda r: 1 - r["train_top1"]),
            curves(runs, "test error", lambda r: 1 - r["test_top1"]),
        ],
    )
