"""Depth with and without shortcuts (He et al. 2016, Fig. 6): plain-20 against plain-56 and ResNet-20
against ResNet-56 on CIFAR-10, by training error."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import combine, finals, lower_verdict, pct, train_error


@experiment(
    "depth",
    "Deeper plain networks train worse (higher training error), deeper residual networks "
    "train better: plain-56 vs plain-20 and ResNet-56 vs ResNet-20 on CIFAR-10 (He et al. 2016, Fig. 6)",
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
    err = {a.label: finals(runs, a.label, train_error) for a in arms}
    plain, residual = lower_verdict(err["plain20"], err["plain56"]), lower_verdict(err["resnet56"], err["resnet20"])
    numbers = (
        f"final training error plain-20 {pct(err['plain20'])} vs plain-56 {pct(err['plain56'])} "
        f"(deeper plain worse: {plain}); ResNet-20 {pct(err['resnet20'])} vs ResNet-56 {pct(err['resnet56'])} "
        f"(deeper residual better: {residual})"
    )
    return x.outcome(
        arms,
        runs,
        standard_table(arms, runs),
        combine([plain, residual]),
        numbers,
        [
            curves(runs, "training error", lambda r: 1 - r["train_top1"]),
            curves(runs, "test error", lambda r: 1 - r["test_top1"]),
        ],
    )
