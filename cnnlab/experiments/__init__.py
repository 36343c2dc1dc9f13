"""The lectures' claims as controlled experiments that end in a verdict.

Each experiment holds everything fixed but the idea under test, trains the arms through the
ordinary trainer on real data, and writes a report (report.py). `small` runs on a 2-core CPU in
minutes on data subsets and scaled-down networks; `full` is the paper's setting, for a GPU.
base.py holds what they are made of (arms, runs, outcomes), verdicts.py how numbers become a
verdict, and each experiment has a file of its own.
"""

from . import (  # noqa: F401  (each registers its experiment)
    activations,
    alexnet_ablation,
    augmentation,
    batchnorm,
    bottleneck,
    depth,
    dropout,
    init,
    lr_schedules,
    optimizers,
    relu_vs_tanh,
    small_filters,
    transfer,
)
from .base import EXPERIMENTS, Arm, Outcome, Panel, Setup, command
from .bottleneck import inception_3a_macs
from .report import plot_panels, run_experiment, write_gallery
from .verdicts import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    PARTLY,
    Finding,
    Part,
    compare,
    first_epoch_below,
    lower_verdict,
    overall,
    speedup_verdict,
)

# the order of `cnnlab experiment --list`, of `all` and of the gallery: the lectures'
ORDER = (
    "relu-vs-tanh",
    "depth",
    "dropout",
    "batchnorm",
    "init",
    "activations",
    "optimizers",
    "lr-schedules",
    "augmentation",
    "small-filters",
    "bottleneck",
    "alexnet-ablation",
    "transfer",
)
if set(ORDER) != set(EXPERIMENTS):
    raise RuntimeError(f"experiments registered and ordered differ: {sorted(set(ORDER) ^ set(EXPERIMENTS))}")
EXPERIMENTS.update({name: EXPERIMENTS.pop(name) for name in ORDER})

__all__ = [
    "EXPERIMENTS",
    "HELD",
    "INCONCLUSIVE",
    "NOT_HELD",
    "PARTLY",
    "Finding",
    "Part",
    "Arm",
    "Outcome",
    "Panel",
    "Setup",
    "command",
    "compare",
    "first_epoch_below",
    "inception_3a_macs",
    "lower_verdict",
    "overall",
    "plot_panels",
    "run_experiment",
    "speedup_verdict",
    "write_gallery",
]
