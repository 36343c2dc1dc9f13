"""Transfer learning with few labels (Yosinski et al. 2014): a network trained on five CIFAR-10
classes, reused on the other five from scratch, as a fixed feature extractor, and fine-tuned."""

from __future__ import annotations

import time

from ..train import recipe, train
from .base import Arm, Outcome, Setup, command, curves, experiment, standard_table
from .verdicts import LOWER, Part, compare, test_error

SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
TARGET_CLASSES = ("dog", "frog", "horse", "ship", "truck")


@experiment(
    "transfer",
    "\u201cTransferring features even from distant tasks can be better than using random features\u201d, and "
    "\u201cinitializing a network with transferred features ... can produce a boost to generalization that lingers "
    "even after fine-tuning\u201d: with few labels, a network pretrained on other classes beats one trained from "
    "scratch as a fixed feature extractor, and more so fine-tuned",
    "Yosinski et al. 2014, abstract and Section 4.1",
    [
        Part(
            "the fixed pretrained features beat training from scratch",
            LOWER.format(a="the feature extractor's test error", b="from scratch's", margin="1 point"),
        ),
        Part(
            "fine-tuning them beats keeping them fixed",
            LOWER.format(a="the fine-tuned net's test error", b="the feature extractor's", margin="1 point"),
        ),
    ],
    seeds=3,
)
def transfer(x: Setup) -> Outcome:
    small = x.small
    common = dict(
        batch_size=64,
        optimizer="adamw",
        weight_decay=0.05,
        schedule="onecycle",
        augment=("flip", "crop"),
        model_kwargs={"width": 0.5} if small else {},
    )
    src = x.out / "source"
    source_settings = {**common, "classes": SOURCE_CLASSES, "epochs": 8 if small else 30, "lr": 4e-3}
    source_cfg = recipe(
        "cnn4",
        "cifar10",
        out=str(src),
        overwrite=True,
        **{**source_settings, **{k: v for k, v in x.overrides.items() if k not in ("model_kwargs", "train_per_class")}},
    )
    start = time.perf_counter()
    source = train(source_cfg, log=lambda line: None)["test"]["top1"]
    x.log(
        f"source: cnn4 on CIFAR-10 {', '.join(SOURCE_CLASSES)}: test accuracy {100 * source:.1f} % "
        f"({time.perf_counter() - start:.0f}s)"
    )
    settings = dict(common, classes=TARGET_CLASSES, train_per_class=50, epochs=30, lr=3e-3)
    arms = [
        Arm(
            strategy,
            "cnn4",
            settings={
                **settings,
                "strategy": strategy,
                **({} if strategy == "from-scratch" else {"weights": str(src)}),
            },
        )
        for strategy in ("from-scratch", "feature-extractor", "fine-tune-all")
    ]
    runs = x.train(arms)

    def judge(runs: dict) -> list:
        return [
            compare(runs, "feature-extractor", "from-scratch", test_error, "test error with 50 labels per class"),
            compare(runs, "fine-tune-all", "feature-extractor", test_error, "test error"),
        ]

    source_command = command(Arm("source", "cnn4", settings=source_settings), {}).replace("--out DIR", "--out SOURCE")
    outcome = x.outcome(
        arms,
        runs,
        standard_table(arms, runs),
        judge,
        [curves(runs, "test error", lambda r: 1 - r["test_top1"])],
    )
    outcome.measurements = {"source_test_top1": source}
    outcome.numbers += f" (source network: {100 * source:.1f} % on its own five classes)"
    outcome.commands = [source_command] + [c.replace(str(src), "SOURCE") for c in outcome.commands]
    return outcome
