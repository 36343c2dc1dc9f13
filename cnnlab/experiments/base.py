"""The lectures' claims as controlled experiments that end in a verdict.

Each experiment holds everything fixed but the idea under test, trains the arms through the
ordinary trainer on real data, and writes a report: report.md (claim, results table with mean
+- std over seeds, verdict with its numbers, the exact commands), metrics.json (every epoch of
every run, and any measurement besides training) and curves.png. `small` runs on a 2-core CPU
in minutes on data subsets and scaled-down networks; `full` is the paper's setting, for a GPU.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

from .checkpoint import atomic_file, save_figure
from .errors import CnnlabError, TrainingDiverged

HELD, NOT_HELD, INCONCLUSIVE = "held", "did not hold", "inconclusive"


@dataclass
class Experiment:
    name: str
    claim: str
    run: Callable  # (scale, seeds, out, log, overrides) -> dict with "table", "verdict", "numbers", "runs", ...


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, claim: str):
    def wrap(fn):
        EXPERIMENTS[name] = Experiment(name, claim, fn)
        return fn
    return wrap


# ---------------------------------------------------------------------------------------------
# Verdicts


def first_epoch_below(history: list[dict], error: float) -> int | None:
    """The first epoch whose training error (1 - train top-1) is at most `error`."""
    return next((r["epoch"] for r in history if 1 - r["train_top1"] <= error), None)


def speedup_verdict(fast: list[int | None], slow: list[int | None], budget: int, held_at: float = 2.0) -> tuple[str, str]:
    """Verdict for "arm A reaches the target `held_at` times sooner than arm B", per seed: an
    arm that never reached it within `budget` epochs counts as budget + 1 (a lower bound)."""
    if any(f is None for f in fast):
        if all(f is None for f in fast) and all(s is not None for s in slow):
            return NOT_HELD, (f"the supposedly slower arm reached the target (in {', '.join(map(str, slow))} epochs), "
                              f"the faster one not within {budget}")
        return INCONCLUSIVE, f"the fast arm did not reach the target within {budget} epochs in every run"
    ratios = [((s if s is not None else budget + 1) / f) for f, s in zip(fast, slow)]
    bound = any(s is None for s in slow)
    ratio = statistics.median(ratios)
    text = f"median ratio {'>= ' if bound else ''}{ratio:.1f}x (per seed: {', '.join(f'{r:.1f}' for r in ratios)})"
    if ratio >= held_at:
        return HELD, text
    if ratio <= 1.0 and not bound:
        return NOT_HELD, text
    return INCONCLUSIVE, text


def lower_verdict(low: list[float], high: list[float], margin: float = 1.0) -> str:
    """Is `low` below `high`? Held when the means differ by more than `margin` (default one
    point, for errors in %) and, with several seeds, by more than twice the standard error of
    the difference; did not hold when the mean of `low` is not below the mean of `high` at all;
    inconclusive in between."""
    diff = statistics.mean(high) - statistics.mean(low)
    noise = 0.0
    if len(low) > 1 and len(high) > 1:
        noise = 2 * math.sqrt(statistics.variance(low) / len(low) + statistics.variance(high) / len(high))
    if diff > max(margin, noise):
        return HELD
    return NOT_HELD if diff <= 0 else INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """All parts held: held; any part reversed: did not hold; otherwise inconclusive."""
    if all(v == HELD for v in verdicts):
        return HELD
    return NOT_HELD if NOT_HELD in verdicts else INCONCLUSIVE


# ---------------------------------------------------------------------------------------------
# Running arms through the trainer


@dataclass
class Arm:
    """One configuration under test: a model, a dataset and TrainConfig settings."""

    label: str
    model: str
    dataset: str = "cifar10"
    settings: dict = field(default_factory=dict)


def _config(arm: Arm, seed: int, out: Path | None, overrides: dict):
    from .train import recipe

    settings = {**arm.settings, **{k: v for k, v in overrides.items() if k != "model_kwargs"}}
    settings["model_kwargs"] = {**arm.settings.get("model_kwargs", {}), **overrides.get("model_kwargs", {})}
    # a re-run of an experiment replaces its earlier runs
    return recipe(arm.model, arm.dataset, seed=seed, out=str(out) if out else None, overwrite=out is not None,
                  **settings)


def train_arms(arms: list[Arm], seeds: int, out: Path, log, overrides: dict) -> dict[str, list[dict]]:
    """Train every arm with seeds 0..seeds-1 (run directories out/LABEL-seedS); the per-epoch
    histories keyed LABEL-seedS. A run whose loss became NaN ends with a row marked "diverged"
    that scores chance accuracy (its weights predict nothing)."""
    from .train import train

    runs = {}
    for arm in arms:
        for seed in range(seeds):
            key = f"{arm.label}-seed{seed}"
            cfg = _config(arm, seed, out / key, overrides)
            start = time.perf_counter()
            try:
                history = train(cfg, log=lambda line: None)["history"]
                note = ""
            except TrainingDiverged as e:
                history = _read_history(out / key)
                chance = 1 / 10
                history.append({"epoch": len(history) + 1, "diverged": True, "train_loss": None,
                                "train_top1": chance, "test_top1": chance, "test_loss": None})
                note = f", diverged: {e}"
            runs[key] = history
            last = history[-1]
            log(f"{key}: train error {100 * (1 - last['train_top1']):.1f} %, test error "
                f"{100 * (1 - last['test_top1']):.1f} % after {last['epoch']} epochs "
                f"({time.perf_counter() - start:.0f}s{note})")
    return runs


def _read_history(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def finals(runs: dict, label: str, value: Callable[[dict], float]) -> list[float]:
    """`value` of the last epoch of each seed's run of arm `label`."""
    return [value(h[-1]) for k, h in runs.items() if k.rsplit("-seed", 1)[0] == label]


def train_error(row: dict) -> float:
    return 100 * (1 - row["train_top1"])


def test_error(row: dict) -> float:
    return 100 * (1 - row["test_top1"])


def gap(row: dict) -> float:
    """Training accuracy minus test accuracy, in points: how much the model overfits."""
    return 100 * (row["train_top1"] - row["test_top1"])


def command(arm: Arm, overrides: dict) -> str:
    """The `cnnlab train` line that reproduces one run of `arm` (seed S, run directory DIR)."""
    from .train import TrainConfig, recipe

    cfg = _config(arm, 0, None, overrides)
    base = recipe(arm.model, arm.dataset)
    parts = [f"cnnlab train {arm.model} --dataset {arm.dataset}"]
    skip = {"model", "dataset", "seed", "out", "model_kwargs", "data_dir"}
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name in skip or value == getattr(base, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{f.name}" if f.name == "nesterov" else "")
        elif isinstance(value, tuple):
            parts.append(f"{flag} '{','.join(value)}'")
        else:
            parts.append(f"{flag} {value}")
    if cfg.model_kwargs:
        parts.append("--model-kwargs " + " ".join(f"{k}={_arg(v)}" for k, v in cfg.model_kwargs.items()))
    return " ".join(p for p in parts if p) + " --seed S --out DIR"


def _arg(value) -> str:
    text = value if isinstance(value, str) else json.dumps(list(value) if isinstance(value, tuple) else value)
    return f"'{text}'" if any(c in text for c in " []\"") else text


def _mean_std(values: list[float], unit: str = "", digits: int = 4) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}g}{unit}"
    return f"{statistics.mean(values):.{digits}g} +- {statistics.stdev(values):.2g}{unit}"


def _pct(values: list[float]) -> str:
    return _mean_std([round(v, 2) for v in values], " %", 3)


def _points(values: list[float]) -> str:
    return _mean_std([round(v, 2) for v in values], " points", 3)


def curves(runs: dict, ylabel: str, value: Callable[[dict], float | None], logy: bool = False) -> dict:
    """A plot panel: `value` per epoch for every run."""
    series = {}
    for key, history in runs.items():
        points = [(r["epoch"], value(r)) for r in history if not r.get("diverged")]
        series[key] = ([p[0] for p in points], [p[1] for p in points])
    return {"xlabel": "epoch", "ylabel": ylabel, "series": series, "logy": logy}


def standard_table(arms: list[Arm], runs: dict, extra: Callable[[Arm], dict] | None = None) -> list[dict]:
    """One row per arm: final training and test error and their gap (mean +- std over seeds)."""
    rows = []
    for arm in arms:
        row = {"arm": arm.label, **(extra(arm) if extra else {}),
               "final training error": _pct(finals(runs, arm.label, train_error)),
               "final test error": _pct(finals(runs, arm.label, test_error))}
        if any(r.get("diverged") for k, h in runs.items() if k.startswith(arm.label + "-seed") for r in h):
            row["final training error"] += " (diverged)"
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# The experiments. Every small setting below was chosen so that the whole experiment takes a
# few minutes on two CPU cores; the full ones follow the papers.

# CIFAR-10, 500 training images per class (5,000), no augmentation or regularisation.
CIFAR_SMALL = dict(train_per_class=500, batch_size=128, weight_decay=0.0, augment=(), schedule="none")


@experiment("relu-vs-tanh", "ReLU networks reach 25 % training error on CIFAR-10 about six times faster (in "
                            "epochs) than the same network with tanh (Krizhevsky et al. 2012, Fig. 1)")
def relu_vs_tanh(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    # As in the paper, each network gets the learning rate that trains it fastest (of `lrs`) and
    # no regularisation; AlexNet's input (Section 2: the raw 0-255 RGB values less the mean) and
    # initialisation, N(0, 0.01^2), at full width. On standardised inputs with He or N(0, 0.01^2)
    # init, tanh trained as fast as ReLU or faster in this network (README); at half width neither
    # reached 25 % within 20 epochs on 5,000 images (ReLU 25.4 %, tanh 36.2 %). The claim is about
    # training error, so at small scale the test curve uses 1,000 test images.
    small = scale == "small"
    settings = dict(CIFAR_SMALL, epochs=20 if small else 60, optimizer="sgd", momentum=0.9, nesterov=False,
                    init="normal", normalize="center", **({"test_per_class": 100} if small else {}))
    if not small:
        settings.pop("train_per_class")
    lrs = (0.003, 0.01, 0.03) if small else (0.001, 0.003, 0.01, 0.03)
    arms = [Arm(f"{act} lr {lr}", "cnn4", settings={**settings, "lr": lr, "model_kwargs": {"activation": act}})
            for act in ("relu", "tanh") for lr in lrs]
    runs = train_arms(arms, seeds, out, log, overrides)
    budget = overrides.get("epochs", settings["epochs"])
    target = 0.25
    reached = {k: first_epoch_below(h, target) for k, h in runs.items()}
    fastest = {act: [min((e for lr in lrs if (e := reached[f"{act} lr {lr}-seed{s}"]) is not None), default=None)
                     for s in range(seeds)] for act in ("relu", "tanh")}
    verdict, numbers = speedup_verdict(fastest["relu"], fastest["tanh"], budget)
    numbers += "; epochs to 25 % training error at the best learning rate: " + ", ".join(
        f"{act} {', '.join(str(e) if e else f'> {budget}' for e in fastest[act])}" for act in fastest)

    def epochs_to_target(arm):
        got = [reached[k] for k in runs if k.startswith(arm.label + "-seed")]
        done = [e for e in got if e is not None]
        text = _mean_std(done) if done else f"> {budget}"
        return {"epochs to 25 % training error": text + (" (not all seeds)" if done and len(done) < len(got) else "")}

    return {"table": standard_table(arms, runs, epochs_to_target), "verdict": verdict, "numbers": numbers,
            "runs": runs, "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "training error", lambda r: 1 - r["train_top1"])]}


@experiment("depth", "Deeper plain networks train worse (higher training error), deeper residual networks "
                     "train better: plain-56 vs plain-20 and ResNet-56 vs ResNet-20 on CIFAR-10 (He et al. 2016, Fig. 6)")
def depth(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    # Quarter width, batch 32 from lr 0.05 (four times the steps of batch 128 for the same images;
    # at batch 128 and 8 epochs ResNet-56 was behind ResNet-20, 51.2 % vs 48.4 %), cosine; 2,500
    # images for 24 epochs, so that the networks get far enough to differ in what they can fit (on
    # 5,000 images for 12 epochs, the same steps, ResNet-56 was still behind, 40.5 % vs 36.2 %);
    # the claim is about training error, so the test curve uses 1,000 test images
    settings = dict(CIFAR_SMALL, train_per_class=250, epochs=24, batch_size=32, optimizer="sgd", lr=0.05,
                    momentum=0.9, weight_decay=1e-4, schedule="cosine", test_per_class=100,
                    model_kwargs={"width": 0.25}) if small else {}
    arms = [Arm(name, name, settings=settings) for name in ("plain20", "plain56", "resnet20", "resnet56")]
    runs = train_arms(arms, seeds, out, log, overrides)
    err = {a.label: finals(runs, a.label, train_error) for a in arms}
    plain, residual = lower_verdict(err["plain20"], err["plain56"]), lower_verdict(err["resnet56"], err["resnet20"])
    numbers = (f"final training error plain-20 {_pct(err['plain20'])} vs plain-56 {_pct(err['plain56'])} "
               f"(deeper plain worse: {plain}); ResNet-20 {_pct(err['resnet20'])} vs ResNet-56 {_pct(err['resnet56'])} "
               f"(deeper residual better: {residual})")
    return {"table": standard_table(arms, runs), "verdict": combine([plain, residual]), "numbers": numbers,
            "runs": runs, "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "training error", lambda r: 1 - r["train_top1"]),
                       curves(runs, "test error", lambda r: 1 - r["test_top1"])]}


@experiment("dropout", "Dropout in the fully connected layers reduces overfitting: a smaller gap between "
                       "training and test accuracy (Srivastava et al. 2014; AlexNet's fc6/fc7)")
def dropout(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    settings = dict(train_per_class=100 if small else 1000, epochs=40 if small else 100, batch_size=64,
                    optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.0, schedule="none", augment=())
    hidden = [1024, 1024] if small else [4096, 4096]
    arms = [Arm(f"dropout {p}", "mlp", "mnist", {**settings, "model_kwargs": {"hidden": hidden, "dropout": p}})
            for p in (0.0, 0.5)]
    runs = train_arms(arms, seeds, out, log, overrides)
    gaps = {a.label: finals(runs, a.label, gap) for a in arms}
    verdict = lower_verdict(gaps["dropout 0.5"], gaps["dropout 0.0"])
    numbers = (f"train-test accuracy gap {_points(gaps['dropout 0.0'])} without dropout, {_points(gaps['dropout 0.5'])} "
               f"with 0.5 (test error {_pct(finals(runs, 'dropout 0.0', test_error))} vs "
               f"{_pct(finals(runs, 'dropout 0.5', test_error))})")
    table = standard_table(arms, runs, lambda a: {"train - test accuracy": _points(gaps[a.label])})
    return {"table": table, "verdict": verdict, "numbers": numbers, "runs": runs,
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "training accuracy", lambda r: r["train_top1"]),
                       curves(runs, "test accuracy", lambda r: r["test_top1"])]}


@experiment("batchnorm", "Batch normalisation speeds training and tolerates higher learning rates: at every "
                         "learning rate the network with BN reaches a lower training error (Ioffe & Szegedy 2015)")
def batchnorm(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    settings = dict(CIFAR_SMALL, epochs=6 if small else 30, optimizer="sgd", momentum=0.9, nesterov=False)
    if not small:
        settings.pop("train_per_class")
    lrs = (0.01, 0.05, 0.25)
    arms = [Arm(f"{'BN' if bn else 'no BN'} lr {lr}", "cnn4",
                settings={**settings, "lr": lr, "model_kwargs": {"batchnorm": bn, **({"width": 0.5} if small else {})}})
            for lr in lrs for bn in (False, True)]
    runs = train_arms(arms, seeds, out, log, overrides)
    parts = [lower_verdict(finals(runs, f"BN lr {lr}", train_error), finals(runs, f"no BN lr {lr}", train_error))
             for lr in lrs]
    numbers = "; ".join(f"lr {lr}: {_pct(finals(runs, f'no BN lr {lr}', train_error))} without BN, "
                        f"{_pct(finals(runs, f'BN lr {lr}', train_error))} with" for lr in lrs) + " training error"
    return {"table": standard_table(arms, runs), "verdict": combine(parts), "numbers": numbers, "runs": runs,
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "training error", lambda r: 1 - r["train_top1"])]}


def _test_batch(cfg, n: int):
    """The first `n` test images of cfg's dataset, normalised as in training, and their labels."""
    import torch

    from .registry import get_model_info
    from .train import NORMALIZATION, make_data

    mean, std = NORMALIZATION[cfg.dataset]
    data = make_data(cfg.dataset, False, get_model_info(cfg.model).input_size, mean, std, torch.device("cpu"),
                     cfg.data_dir)
    return data.batch(torch.arange(min(n, len(data))))


def activation_std_at_init(arm: Arm, seed: int, overrides: dict) -> list[dict]:
    """Per hidden layer of `arm`'s freshly initialised model, on 500 test images: the std of
    the activation output and the norm of the gradient reaching the layer's weights."""
    import torch

    from .registry import create_model
    from .train import initialize, layer_statistics

    cfg = _config(arm, seed, None, overrides)
    torch.manual_seed(cfg.seed)  # the same draw as the training run's
    model = create_model(cfg.model, **cfg.model_kwargs)
    initialize(model, cfg.init)
    stats = layer_statistics(model, *_test_batch(cfg, 500))
    acts = [r for r in stats if r["type"] not in ("Linear", "Conv2d", "Dropout", "Flatten")]
    linears = [r for r in stats if r["type"] == "Linear"]
    return [{"layer": i + 1, "activation_std": a["out_std"], "grad_norm": w["grad_norm"]}
            for i, (a, w) in enumerate(zip(acts, linears))]


@experiment("init", "Initialisation scale decides whether a deep plain network trains at all: with "
                    "N(0, 0.01^2) the activations and gradients of a 10-layer ReLU network vanish and it does "
                    "not learn; Xavier shrinks them slowly; He keeps them (Glorot & Bengio 2010; He et al. 2015)")
def init(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    settings = dict(train_per_class=1000 if small else None, epochs=3 if small else 20, batch_size=128,
                    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, schedule="none", augment=(),
                    model_kwargs={"hidden": [256] * 10, "activation": "relu"})
    arms = [Arm(scheme, "mlp", "mnist", {**settings, "init": scheme}) for scheme in ("normal", "xavier", "he")]
    stats = {a.label: activation_std_at_init(a, 0, overrides) for a in arms}
    runs = train_arms(arms, seeds, out, log, overrides)
    shrink = {a: s[-1]["activation_std"] / s[0]["activation_std"] for a, s in stats.items()}
    acc = {a.label: finals(runs, a.label, lambda r: 100 * r["test_top1"]) for a in arms}
    vanished = shrink["normal"] < 1e-3 and statistics.mean(acc["normal"]) < 20
    trains = statistics.mean(acc["he"]) > 90 and shrink["he"] > 0.1
    verdict = HELD if vanished and trains else NOT_HELD if statistics.mean(acc["normal"]) > 50 else INCONCLUSIVE
    numbers = "; ".join(f"{a}: activation std layer 10 / layer 1 = {shrink[a]:.2g}, test accuracy {_pct(acc[a])}"
                        for a in stats)
    table = standard_table(arms, runs, lambda a: {
        "activation std, layer 1 -> 10": f"{stats[a.label][0]['activation_std']:.3g} -> {stats[a.label][-1]['activation_std']:.3g}",
        "weight gradient norm, layer 1 -> 10": f"{stats[a.label][0]['grad_norm']:.3g} -> {stats[a.label][-1]['grad_norm']:.3g}"})
    layers = {a: ([r["layer"] for r in s], [r["activation_std"] for r in s]) for a, s in stats.items()}
    return {"table": table, "verdict": verdict, "numbers": numbers, "runs": runs, "measurements": stats,
            "commands": [command(a, overrides) for a in arms],
            "panels": [{"xlabel": "hidden layer", "ylabel": "activation std at init", "series": layers, "logy": True},
                       curves(runs, "test accuracy", lambda r: r["test_top1"])]}


def unit_health(arm: Arm, run: Path, overrides: dict) -> dict:
    """For the trained model in `run`, over 1,000 test images: the fraction of activations whose
    local gradient is under 10 % of the non-linearity's largest (saturated, for sigmoid/tanh; the
    flat side for ReLU and leaky ReLU) and the fraction of units that are zero for every image (dead)."""
    import torch

    from .train import load_model

    cfg = _config(arm, 0, None, overrides)
    model = load_model(run).eval()
    x, _ = _test_batch(cfg, 1000)
    outs = []
    hooks = [m.register_forward_hook(lambda mod, i, o: outs.append((type(mod).__name__, o.detach())))
             for m in model.modules() if type(m).__name__ in ("Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Maxout")]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    small, dead, total_units, total = 0.0, 0, 0, 0
    for kind, o in outs:
        slope = {"Sigmoid": lambda y: y * (1 - y) / 0.25, "Tanh": lambda y: 1 - y ** 2,
                 "ReLU": lambda y: (y > 0).float(), "LeakyReLU": lambda y: torch.where(y > 0, 1.0, 0.01),
                 "Maxout": lambda y: torch.ones_like(y)}[kind](o)
        small += (slope < 0.1).float().sum().item()
        total += o.numel()
        dead += ((o == 0).all(0)).sum().item() if kind == "ReLU" else 0
        total_units += o[0].numel()
    return {"saturated": 100 * small / total, "dead": 100 * dead / total_units}


@experiment("activations", "Saturating non-linearities (sigmoid, tanh) train slower than non-saturating ones "
                           "(ReLU, leaky ReLU, maxout) in a deep network; ReLU can leave units dead, leaky ReLU "
                           "and maxout cannot")
def activations(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    settings = dict(train_per_class=1000 if small else None, epochs=3 if small else 20, batch_size=128,
                    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, schedule="none", augment=())
    names = ("sigmoid", "tanh", "relu", "leaky_relu", "maxout")
    # each with the initialisation that keeps its signal's scale: He for ReLU and leaky ReLU (half
    # the inputs cut), Xavier for the others (maxout's output has its input's second moment)
    arms = [Arm(a, "mlp", "mnist", {**settings, "init": "he" if a in ("relu", "leaky_relu") else "xavier",
                                    "model_kwargs": {"hidden": [256] * 5, "activation": a}}) for a in names]
    runs = train_arms(arms, seeds, out, log, overrides)
    health = {a.label: unit_health(a, out / f"{a.label}-seed0", overrides) for a in arms}
    err = {a: finals(runs, a, train_error) for a in names}
    saturating = max(("sigmoid", "tanh"), key=lambda a: -statistics.mean(err[a]))  # the better of the two
    worst_fast = max(("relu", "leaky_relu", "maxout"), key=lambda a: statistics.mean(err[a]))
    verdict = lower_verdict(err[worst_fast], err[saturating])
    if health["leaky_relu"]["dead"] or health["maxout"]["dead"]:
        verdict = NOT_HELD
    numbers = (f"final training error {', '.join(f'{a} {_pct(err[a])}' for a in names)}; "
               f"dead units: relu {health['relu']['dead']:.1f} %, leaky_relu {health['leaky_relu']['dead']:.1f} %, "
               f"maxout {health['maxout']['dead']:.1f} %")
    table = standard_table(arms, runs, lambda a: {"flat activations (slope < 10 % of max)": f"{health[a.label]['saturated']:.1f} %",
                                                  "dead units": f"{health[a.label]['dead']:.1f} %"})
    return {"table": table, "verdict": verdict, "numbers": numbers, "runs": runs, "measurements": health,
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "training error", lambda r: 1 - r["train_top1"])]}


@experiment("optimizers", "Momentum, Nesterov momentum and the adaptive methods (Adagrad, RMSProp, Adam) all "
                          "train faster than plain mini-batch SGD at the usual learning rates")
def optimizers(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    settings = dict(CIFAR_SMALL, epochs=8 if small else 30, model_kwargs={"width": 0.5} if small else {})
    if not small:
        settings.pop("train_per_class")
    choices = {"sgd": dict(optimizer="sgd", lr=0.01, momentum=0.0, nesterov=False),
               "momentum": dict(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=False),
               "nesterov": dict(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True),
               "adagrad": dict(optimizer="adagrad", lr=0.01),
               "rmsprop": dict(optimizer="rmsprop", lr=1e-3, momentum=0.0),
               "adam": dict(optimizer="adam", lr=1e-3)}
    arms = [Arm(name, "cnn4", settings={**settings, **opt}) for name, opt in choices.items()]
    runs = train_arms(arms, seeds, out, log, overrides)
    loss = {a.label: finals(runs, a.label, lambda r: r["train_loss"]) for a in arms}
    parts = [lower_verdict(loss[name], loss["sgd"], margin=0.02) for name in choices if name != "sgd"]
    numbers = "final training loss " + ", ".join(f"{n} {_mean_std(loss[n], digits=3)}" for n in choices)
    table = standard_table(arms, runs, lambda a: {"final training loss": _mean_std(loss[a.label], digits=3)})
    return {"table": table, "verdict": combine(parts), "numbers": numbers, "runs": runs,
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "training loss", lambda r: r["train_loss"], logy=True)]}


@experiment("lr-schedules", "Decaying the learning rate (step, exponential, cosine) ends at a lower training "
                            "loss and a lower test error than keeping it constant")
def lr_schedules(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    epochs = 10 if small else 60
    settings = dict(CIFAR_SMALL, epochs=epochs, optimizer="sgd", lr=0.05, momentum=0.9,
                    model_kwargs={"width": 0.5} if small else {})
    if not small:
        settings.pop("train_per_class")
    choices = {"constant": dict(schedule="none"), "step": dict(schedule="step", step_size=epochs * 2 // 5, gamma=0.1),
               "exponential": dict(schedule="exponential", gamma=round(0.1 ** (1 / epochs), 4)),  # to lr / 10
               "plateau": dict(schedule="plateau", gamma=0.1), "cosine": dict(schedule="cosine")}
    arms = [Arm(name, "cnn4", settings={**settings, **s}) for name, s in choices.items()]
    runs = train_arms(arms, seeds, out, log, overrides)
    loss = {a.label: finals(runs, a.label, lambda r: r["train_loss"]) for a in arms}
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    decaying = ("step", "exponential", "cosine")
    parts = [lower_verdict(loss[n], loss["constant"], margin=0.02) for n in decaying] + \
            [lower_verdict(err[n], err["constant"]) for n in decaying]
    numbers = ("final training loss / test error: " +
               ", ".join(f"{n} {_mean_std(loss[n], digits=3)} / {_pct(err[n])}" for n in choices))
    table = standard_table(arms, runs, lambda a: {"final training loss": _mean_std(loss[a.label], digits=3)})
    return {"table": table, "verdict": combine(parts), "numbers": numbers, "runs": runs,
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "learning rate", lambda r: r["lr"], logy=True),
                       curves(runs, "training loss", lambda r: r["train_loss"], logy=True)]}


@experiment("augmentation", "Data augmentation reduces overfitting on a small training set: flips and crops "
                            "shrink the train-test gap and lower the test error; richer augmentation more so")
def augmentation(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    # AdamW one-cycle, so that every arm has converged by the end (with SGD at a constant rate the
    # augmented arms were still far from trained after 20 epochs, and scored worse for it)
    settings = dict(CIFAR_SMALL, train_per_class=250 if small else 1000, epochs=30 if small else 100,
                    optimizer="adamw", lr=3e-3, weight_decay=5e-4, schedule="onecycle",
                    model_kwargs={"width": 0.5} if small else {})
    choices = {"none": (), "flip+crop": ("flip", "crop"), "flip+crop+jitter+scale": ("flip", "crop", "jitter", "scale")}
    arms = [Arm(name, "cnn4", settings={**settings, "augment": aug}) for name, aug in choices.items()]
    runs = train_arms(arms, seeds, out, log, overrides)
    gaps = {a.label: finals(runs, a.label, gap) for a in arms}
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    parts = [lower_verdict(gaps["flip+crop"], gaps["none"]), lower_verdict(err["flip+crop"], err["none"])]
    numbers = "train-test gap / test error: " + ", ".join(f"{n} {_points(gaps[n])} / {_pct(err[n])}" for n in choices)
    table = standard_table(arms, runs, lambda a: {"train - test accuracy": _points(gaps[a.label])})
    return {"table": table, "verdict": combine(parts), "numbers": numbers, "runs": runs,
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "training accuracy", lambda r: r["train_top1"]),
                       curves(runs, "test accuracy", lambda r: r["test_top1"])]}


def _cost(arm: Arm, overrides: dict) -> dict:
    """Parameters and multiply-adds of one image through `arm`'s model (the analyser's numbers)."""
    from .analysis import analyze
    from .registry import create_model

    cfg = _config(arm, 0, None, overrides)
    model = create_model(cfg.model, **cfg.model_kwargs)
    totals = analyze(model, tuple(model.input_size)).totals
    return {"params": totals["params"], "macs": totals["macs"]}


@experiment("small-filters", "A stack of three 3x3 convolutions sees what one 7x7 sees with 27 C^2 instead of "
                             "49 C^2 weights and three non-linearities, and is at least as accurate (VGG, Section 2.3)")
def small_filters(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    # He initialisation, AdamW one-cycle and batch norm for both: with PyTorch's default init and
    # SGD the seven-layer 3x3 stack did not start learning within 10 epochs (VGG itself needed
    # staged training or a good init), with He init and SGD it was still behind after 10, and
    # with AdamW but no batch norm still behind after 15 (48.2 % vs 46.7 % test error). VGG's
    # crops and flips: without them, on 5,000 images, the 3x3 stack fitted the training set better
    # (16.4 % vs 20.1 % training error) but overfitted more (41.5 % vs 40.7 % test error)
    settings = dict(CIFAR_SMALL, train_per_class=1000, epochs=10 if small else 60, optimizer="adamw", lr=3e-3,
                    weight_decay=5e-4, schedule="onecycle", init="he", augment=("flip", "crop"),
                    model_kwargs={"channels": 32, "batchnorm": True})
    if not small:
        settings.pop("train_per_class")
    arms = [Arm(label, "filter_stack", settings={**settings, "model_kwargs": {**settings["model_kwargs"], "design": d}})
            for label, d in (("3x3 stack", "3x3"), ("7x7", "single"))]
    cost = {a.label: _cost(a, overrides) for a in arms}
    runs = train_arms(arms, seeds, out, log, overrides)
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    fewer = cost["3x3 stack"]["params"] < cost["7x7"]["params"]
    accurate = lower_verdict(err["7x7"], err["3x3 stack"])  # held = the 7x7 is *better*
    verdict = NOT_HELD if not fewer or accurate == HELD else HELD if statistics.mean(err["3x3 stack"]) <= statistics.mean(err["7x7"]) else INCONCLUSIVE
    numbers = (f"parameters {cost['3x3 stack']['params']:,} vs {cost['7x7']['params']:,}, multiply-adds "
               f"{cost['3x3 stack']['macs'] / 1e6:.1f}M vs {cost['7x7']['macs'] / 1e6:.1f}M, "
               f"test error {_pct(err['3x3 stack'])} vs {_pct(err['7x7'])}")
    table = standard_table(arms, runs, lambda a: {"parameters": f"{cost[a.label]['params']:,}",
                                                  "multiply-adds": f"{cost[a.label]['macs'] / 1e6:.2f}M"})
    return {"table": table, "verdict": verdict, "numbers": numbers, "runs": runs, "measurements": cost,
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "test error", lambda r: 1 - r["test_top1"])]}


def inception_3a_macs() -> dict:
    """Multiply-adds of GoogLeNet's inception (3a) on its 28x28x192 input, with the paper's 1x1
    reductions (Fig. 2b, Table 1) and without them (Fig. 2a, same output widths)."""
    from torch import nn

    from .analysis import analyze
    from .models import InceptionModule

    out = {}
    for label, module in (("naive", InceptionModule(192, 64, None, 128, None, 32, None, naive=True)),
                          ("with 1x1 reductions", InceptionModule(192, 64, 96, 128, 16, 32, 32))):
        out[label] = analyze(nn.Sequential(module), (192, 28, 28)).totals["macs"]
    return out


@experiment("bottleneck", "1x1 reductions before the 3x3 and 5x5 convolutions of an inception module save most "
                          "of its multiply-adds at little or no cost in accuracy (Szegedy et al. 2014, Section 4)")
def bottleneck(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    settings = dict(CIFAR_SMALL, epochs=20 if small else 60, optimizer="sgd", lr=0.02, momentum=0.9, init="he")
    if not small:
        settings.pop("train_per_class")
    arms = [Arm(label, "inception_cifar", settings={**settings, "model_kwargs": {"naive": naive}})
            for label, naive in (("naive", True), ("with 1x1 reductions", False))]
    cost = {a.label: _cost(a, overrides) for a in arms}
    googlenet = inception_3a_macs()
    runs = train_arms(arms, seeds, out, log, overrides)
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    ratio = cost["with 1x1 reductions"]["macs"] / cost["naive"]["macs"]
    worse = statistics.mean(err["with 1x1 reductions"]) - statistics.mean(err["naive"])
    verdict = HELD if ratio <= 0.5 and worse <= 2 else NOT_HELD if ratio > 0.8 or worse > 5 else INCONCLUSIVE
    numbers = (f"multiply-adds with reductions {100 * ratio:.0f} % of naive ({cost['with 1x1 reductions']['macs'] / 1e6:.2f}M "
               f"vs {cost['naive']['macs'] / 1e6:.2f}M), test error {_pct(err['with 1x1 reductions'])} vs "
               f"{_pct(err['naive'])}; GoogLeNet's inception (3a): {googlenet['with 1x1 reductions'] / 1e6:.0f}M vs "
               f"{googlenet['naive'] / 1e6:.0f}M multiply-adds")
    table = standard_table(arms, runs, lambda a: {"parameters": f"{cost[a.label]['params']:,}",
                                                  "multiply-adds": f"{cost[a.label]['macs'] / 1e6:.2f}M",
                                                  "GoogLeNet (3a) multiply-adds": f"{googlenet[a.label] / 1e6:.1f}M"})
    return {"table": table, "verdict": verdict, "numbers": numbers, "runs": runs,
            "measurements": {"cifar": cost, "googlenet_3a_macs": googlenet},
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "test error", lambda r: 1 - r["test_top1"])]}


@experiment("alexnet-ablation", "Removing AlexNet's fully connected layers fc6-fc7 costs little accuracy; removing "
                                "the middle convolutional layers conv3-conv4 costs more (Zeiler & Fergus 2014, "
                                "Table 3; removing both is reported alongside)")
def alexnet_ablation(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    small = scale == "small"
    # AdamW one-cycle: with SGD at lr 0.02 the eight-layer net with dropout was still far from
    # trained after 10 epochs, and every ablation then *helped* (a shallower net trains faster).
    # Small scale, two deviations from AlexNet: batch norm after every convolution and no dropout.
    # Without them the full net was the slowest to train in 15 epochs and every removal lowered
    # the test error; with batch norm alone, removing fc6-fc7 (and their dropout) still helped by
    # 7.6 points (README)
    settings = dict(CIFAR_SMALL, train_per_class=1000 if small else None, epochs=15 if small else 60,
                    optimizer="adamw", lr=2e-3, weight_decay=5e-4, schedule="onecycle", augment=("flip", "crop"))
    width = {"width": 0.125, "fc": 256, "batchnorm": True} if small else {}
    if small:
        settings["dropout"] = 0.0
    choices = {"full": (), "without fc6, fc7": ("fc6", "fc7"), "without conv3, conv4": ("conv3", "conv4"),
               "without both": ("conv3", "conv4", "fc6", "fc7")}
    arms = [Arm(label, "alexnet_cifar", settings={**settings, "model_kwargs": {**width, "remove": list(r)}})
            for label, r in choices.items()]
    cost = {a.label: _cost(a, overrides) for a in arms}
    runs = train_arms(arms, seeds, out, log, overrides)
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    cost_of = {label: statistics.mean(err[label]) - statistics.mean(err["full"]) for label in choices}
    verdict = lower_verdict(err["without fc6, fc7"], err["without conv3, conv4"])
    numbers = "test error vs the full network: " + ", ".join(
        f"{label} {cost_of[label]:+.1f} points" for label in choices if label != "full") + \
        f" (full: {_pct(err['full'])})"
    table = standard_table(arms, runs, lambda a: {"parameters": f"{cost[a.label]['params']:,}",
                                                  "test error change": f"{cost_of[a.label]:+.1f} points"})
    return {"table": table, "verdict": verdict, "numbers": numbers, "runs": runs, "measurements": cost,
            "commands": [command(a, overrides) for a in arms],
            "panels": [curves(runs, "test error", lambda r: 1 - r["test_top1"])]}


SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
TARGET_CLASSES = ("dog", "frog", "horse", "ship", "truck")


@experiment("transfer", "With few labels, a network pretrained on related data beats training from scratch, "
                        "used as a fixed feature extractor and more so fine-tuned (Yosinski et al. 2014)")
def transfer(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    from .train import recipe, train

    small = scale == "small"
    common = dict(batch_size=64, optimizer="adamw", weight_decay=0.05, schedule="onecycle", augment=("flip", "crop"),
                  model_kwargs={"width": 0.5} if small else {})
    src = out / "source"
    source_settings = {**common, "classes": SOURCE_CLASSES, "epochs": 8 if small else 30, "lr": 4e-3}
    source_cfg = recipe("cnn4", "cifar10", out=str(src), overwrite=True, **{**source_settings, **{
        k: v for k, v in overrides.items() if k not in ("model_kwargs", "train_per_class")}})
    start = time.perf_counter()
    source = train(source_cfg, log=lambda line: None)["test"]["top1"]
    log(f"source: cnn4 on CIFAR-10 {', '.join(SOURCE_CLASSES)}: test accuracy {100 * source:.1f} % "
        f"({time.perf_counter() - start:.0f}s)")
    settings = dict(common, classes=TARGET_CLASSES, train_per_class=50, epochs=30, lr=3e-3)
    arms = [Arm(strategy, "cnn4", settings={**settings, "strategy": strategy,
                                            **({} if strategy == "from-scratch" else {"weights": str(src)})})
            for strategy in ("from-scratch", "feature-extractor", "fine-tune-all")]
    runs = train_arms(arms, seeds, out, log, overrides)
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    parts = [lower_verdict(err["feature-extractor"], err["from-scratch"]),
             lower_verdict(err["fine-tune-all"], err["feature-extractor"])]
    numbers = ("test error with 50 labels per class: " + ", ".join(f"{a} {_pct(err[a])}" for a in err) +
               f" (source network: {100 * source:.1f} % on its own five classes)")
    source_command = command(Arm("source", "cnn4", settings=source_settings), {}).replace("--out DIR", "--out SOURCE")
    return {"table": standard_table(arms, runs), "verdict": combine(parts), "numbers": numbers, "runs": runs,
            "commands": [source_command] + [command(a, overrides).replace(str(src), "SOURCE") for a in arms],
            "panels": [curves(runs, "test error", lambda r: 1 - r["test_top1"])]}


# ---------------------------------------------------------------------------------------------
# Running and reporting


def run_experiment(name: str, scale: str = "small", seeds: int = 1, out: str | os.PathLike | None = None,
                   log=print, **overrides) -> dict:
    """Run an experiment and write its report into `out` (default runs/experiments/NAME).
    `overrides` (TrainConfig settings such as epochs or data_dir) apply to every run."""
    if name not in EXPERIMENTS:
        raise CnnlabError(f"unknown experiment {name!r}; `cnnlab experiment --list` lists them: "
                          f"{', '.join(EXPERIMENTS)}")
    if scale not in ("small", "full"):
        raise CnnlabError(f"scale must be small or full, got {scale!r}")
    if seeds < 1:
        raise CnnlabError(f"seeds must be at least 1, got {seeds}")
    exp = EXPERIMENTS[name]
    out = Path(out or Path("runs") / "experiments" / name)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = exp.run(scale, seeds, out, log, overrides)
    result["seconds"] = time.perf_counter() - start
    write_report(exp, result, scale, seeds, out)
    log(f"{name}: {result['verdict']} ({result['numbers']}); report in {out / 'report.md'}")
    return result


def write_report(exp: Experiment, result: dict, scale: str, seeds: int, out: Path) -> None:
    rows = result["table"]
    header = list(rows[0])
    lines = [f"# {exp.name}", "", f"**Claim.** {exp.claim}", "",
             f"**Verdict: {result['verdict']}** - {result['numbers']}.", "",
             f"Scale `{scale}`, {seeds} seed(s), {result['seconds']:.0f} s.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    lines += ["", "![curves](curves.png)", "", "Commands (one per run):", "", "```bash",
              *result["commands"], f"cnnlab experiment {exp.name} --scale {scale} --seeds {seeds}  # all of it", "```", ""]
    _write(out / "report.md", "\n".join(lines))
    _write(out / "metrics.json", json.dumps({"experiment": exp.name, "claim": exp.claim, "scale": scale,
                                             "seeds": seeds, "verdict": result["verdict"],
                                             "numbers": result["numbers"], "table": rows,
                                             "seconds": round(result["seconds"], 1),
                                             "measurements": result.get("measurements"),
                                             "runs": result["runs"]}, indent=1))
    plot_panels(result["panels"], out / "curves.png")


def write_gallery(results: Path, page: Path) -> Path:
    """A Markdown page of every experiment report under `results` (folders NAME/ with
    metrics.json and curves.png): claim, verdict, table and plot, the command to regenerate;
    the plots are copied next to the page into PAGE_STEM/NAME.png."""
    import shutil

    images = page.parent / page.stem
    images.mkdir(parents=True, exist_ok=True)
    lines = ["# The lectures' claims, run", "",
             "Each section is one `cnnlab experiment NAME` at the small scale (a 2-core CPU, minutes; one seed), "
             "committed from a real run. The full report of a run (report.md, metrics.json with every epoch, "
             "curves.png) lands in its folder; `--scale full` is the paper's setting, for a GPU.", ""]
    done = []
    for name in EXPERIMENTS:
        path = results / name / "metrics.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        with atomic_file(images / f"{name}.png", ".png") as tmp:
            shutil.copyfile(results / name / "curves.png", tmp)
        header = list(m["table"][0])
        lines += [f"## {name}", "", f"**Claim.** {m['claim']}", "",
                  f"**Verdict: {m['verdict']}** - {m['numbers']}.", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                  *("| " + " | ".join(str(r[h]) for h in header) + " |" for r in m["table"]), "",
                  f"![{name}]({images.name}/{name}.png)", "",
                  f"`cnnlab experiment {name} --scale {m['scale']} --seeds {m['seeds']}`"
                  + (f" ({m['seconds']:.0f} s)" if "seconds" in m else ""), ""]
        done.append(name)
    missing = [n for n in EXPERIMENTS if n not in done]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)}.", ""]
    _write(page, "\n".join(lines))
    return page


def plot_panels(panels: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, (xs, ys) in panel["series"].items():
            ax.plot(xs, ys, label=label.removesuffix("-seed0"), marker="." if len(xs) < 15 else None)
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        if panel.get("logy"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def _write(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)
