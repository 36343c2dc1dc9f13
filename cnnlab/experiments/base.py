"""What every experiment is made of: arms (one configuration under test each) trained through the
ordinary trainer for each seed, the command line that reproduces each run, and an outcome
(table, verdict with its numbers, curves) for the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..analysis import analyze
from ..data.loaders import make_data
from ..data.normalization import NORMALIZATION
from ..errors import TrainingDiverged
from ..factory import create_model
from ..registry import get_model_info
from ..report.record import read_lines
from ..train import TrainConfig, recipe, train
from ..train.recipes import command_line
from .verdicts import Finding, Part, agreement, finals, overall, pct, test_error, train_error


@dataclass
class Arm:
    """One configuration under test: a model, a dataset and TrainConfig settings."""

    label: str
    model: str
    dataset: str = "cifar10"
    settings: dict = field(default_factory=dict)


@dataclass
class Panel:
    """One plot of the report: a value per epoch (or per layer) for every run."""

    xlabel: str
    ylabel: str
    series: dict[str, tuple[list, list]]  # run -> (x values, y values)
    logy: bool = False


@dataclass
class Outcome:
    """What an experiment found: a table row per arm, the verdict and the numbers behind it, every
    run's history, the commands that reproduce the runs, the plots, and measurements besides training."""

    table: list[dict]
    findings: list[Finding]  # one per part of the claim, in the order of Experiment.parts
    verdict: str
    numbers: str
    runs: dict[str, list[dict]]
    commands: list[str]
    panels: list[Panel]
    measurements: dict | None = None
    seconds: float = 0.0


@dataclass
class Setup:
    """How an experiment runs: its scale ("small": minutes on a CPU; "full": the paper's), the
    seeds per arm, the report folder, the log, and TrainConfig settings that override every run's."""

    scale: str
    seeds: int
    out: Path
    log: Callable[[str], None]
    overrides: dict

    @property
    def small(self) -> bool:
        return self.scale == "small"

    def config(self, arm: Arm, seed: int = 0, out: Path | None = None) -> TrainConfig:
        """The TrainConfig of one run of `arm`."""
        return arm_config(arm, seed, out, self.overrides)

    def train(self, arms: list[Arm]) -> dict[str, list[dict]]:
        """Train every arm with seeds 0..seeds-1 (run directories out/LABEL-seedS); the per-epoch
        histories keyed LABEL-seedS. A run whose loss became NaN ends with a row marked "diverged"
        that scores chance accuracy (its weights predict nothing)."""
        runs = {}
        for arm in arms:
            for seed in range(self.seeds):
                key = f"{arm.label}-seed{seed}"
                start = time.perf_counter()
                try:
                    history = train(self.config(arm, seed, self.out / key), log=lambda line: None)["history"]
                    note = ""
                except TrainingDiverged as e:
                    history = read_lines(self.out / key / "metrics.jsonl")  # the epochs before it diverged
                    chance = 1 / 10
                    history.append(
                        {
                            "epoch": len(history) + 1,
                            "diverged": True,
                            "train_loss": None,
                            "train_top1": chance,
                            "test_top1": chance,
                            "test_loss": None,
                        }
                    )
                    note = f", diverged: {e}"
                runs[key] = history
                last = history[-1]
                self.log(
                    f"{key}: train error {100 * (1 - last['train_top1']):.1f} %, test error "
                    f"{100 * (1 - last['test_top1']):.1f} % after {last['epoch']} epochs "
                    f"({time.perf_counter() - start:.0f}s{note})"
                )
        return runs

    def outcome(
        self,
        arms: list[Arm],
        runs: dict,
        table: list[dict],
        judge: Callable[[dict], list[Finding]],
        panels: list[Panel],
        measurements: dict | None = None,
    ) -> Outcome:
        """The outcome: `judge(runs)` gives a Finding per part of the claim, from all seeds and from
        each seed alone (their agreement); the overall verdict; the command line of every arm."""
        findings = judge(runs)
        agreement(judge, runs, findings)
        numbers = "; ".join(f.numbers for f in findings)
        commands = [command(a, self.overrides) for a in arms]
        return Outcome(table, findings, overall(findings), numbers, runs, commands, panels, measurements)


def arm_config(arm: Arm, seed: int, out: Path | None, overrides: dict) -> TrainConfig:
    """The TrainConfig of one run of `arm`: its settings, the overrides on top (builder arguments
    add up); a re-run of an experiment replaces its earlier runs."""
    settings = {**arm.settings, **{k: v for k, v in overrides.items() if k != "model_kwargs"}}
    settings["model_kwargs"] = {**arm.settings.get("model_kwargs", {}), **overrides.get("model_kwargs", {})}
    return recipe(
        arm.model, arm.dataset, seed=seed, out=str(out) if out else None, overwrite=out is not None, **settings
    )


# settings a command line leaves out: given otherwise (model, dataset, builder arguments), a
# placeholder (seed S, run directory DIR), or where the data is on this machine
NOT_IN_COMMANDS = {"model", "dataset", "seed", "out", "model_kwargs", "data_dir"}


def command(arm: Arm, overrides: dict) -> str:
    """The `cnnlab train` line that reproduces one run of `arm` (seed S, run directory DIR): the
    flags of every setting that differs from the recipe's."""
    return command_line(arm_config(arm, 0, None, overrides), NOT_IN_COMMANDS - {"model_kwargs"}) + " --seed S --out DIR"


def curves(runs: dict, ylabel: str, value: Callable[[dict], float | None], logy: bool = False) -> Panel:
    """A plot panel: `value` per epoch for every run."""
    series = {}
    for key, history in runs.items():
        pts = [(r["epoch"], value(r)) for r in history if not r.get("diverged")]
        series[key] = ([p[0] for p in pts], [p[1] for p in pts])
    return Panel("epoch", ylabel, series, logy)


def standard_table(arms: list[Arm], runs: dict, extra: Callable[[Arm], dict] | None = None) -> list[dict]:
    """One row per arm: final training and test error (mean +- std over seeds), and `extra`'s columns."""
    rows = []
    for arm in arms:
        row = {
            "arm": arm.label,
            **(extra(arm) if extra else {}),
            "final training error": pct(finals(runs, arm.label, train_error)),
            "final test error": pct(finals(runs, arm.label, test_error)),
        }
        if any(r.get("diverged") for k, h in runs.items() if k.startswith(arm.label + "-seed") for r in h):
            row["final training error"] += " (diverged)"
        rows.append(row)
    return rows


def test_batch(cfg: TrainConfig, n: int):
    """The first `n` test images of cfg's dataset, normalised as in training, and their labels."""
    mean, std = NORMALIZATION[cfg.dataset]
    data = make_data(
        cfg.dataset, False, get_model_info(cfg.model).input_size, mean, std, torch.device("cpu"), cfg.data_dir
    )
    return data.batch(torch.arange(min(n, len(data))))


def model_cost(setup: Setup, arm: Arm) -> dict:
    """Parameters and multiply-adds of one image through `arm`'s model (the analyser's numbers)."""
    cfg = setup.config(arm)
    model = create_model(cfg.model, **cfg.model_kwargs)
    totals = analyze(model, tuple(model.input_size)).totals
    return {"params": totals["params"], "macs": totals["macs"]}


# MNIST for the deep MLPs of `init` and `activations`: plain SGD with momentum for 20 epochs, no
# regularisation; at the small scale 1,000 training images per class and 3 epochs
MNIST_DEEP_MLP = dict(
    epochs=20, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, schedule="none", augment=()
)
MNIST_SMALL = dict(train_per_class=1000, epochs=3)

# CIFAR-10, 500 training images per class (5,000), no augmentation or regularisation.
CIFAR_SMALL = dict(train_per_class=500, batch_size=128, weight_decay=0.0, augment=(), schedule="none")


@dataclass
class Experiment:
    """A claim as its source states it, the parts it asserts (each with its criterion), the seeds
    per arm at the small scale (three where an arm's run takes under a minute on a 2-core CPU),
    and `run(setup) -> Outcome`, which tests it."""

    name: str
    claim: str
    source: str
    parts: tuple[Part, ...]
    seeds: int
    run: Callable[[Setup], Outcome]

    def default_seeds(self, scale: str) -> int:
        return self.seeds if scale == "small" else 1


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, claim: str, source: str, parts: list[Part], seeds: int = 1):
    """Register an experiment: `run(setup) -> Outcome` tests `claim` (from `source`), part by part."""

    def wrap(fn):
        EXPERIMENTS[name] = Experiment(name, claim, source, tuple(parts), seeds, fn)
        return fn

    return wrap
