"""The lectures' claims as controlled experiments that end in a verdict.

Each experiment holds everything fixed but the idea under test, trains the arms through the
ordinary trainer on real data, and writes a report: report.md (claim, results table with mean
+- std over seeds, verdict with its numbers, the exact commands), metrics.json (every epoch of
every run) and curves.png. `small` runs on a 2-core CPU in minutes on data subsets; `full` is
the paper's setting, for a GPU.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .checkpoint import atomic_file
from .errors import CnnlabError

HELD, NOT_HELD, INCONCLUSIVE = "held", "did not hold", "inconclusive"


@dataclass
class Experiment:
    name: str
    claim: str
    run: Callable  # (scale, seeds, out, log, overrides) -> dict with "table", "verdict", "numbers"


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, claim: str):
    def wrap(fn):
        EXPERIMENTS[name] = Experiment(name, claim, fn)
        return fn
    return wrap


def first_epoch_below(history: list[dict], error: float) -> int | None:
    """The first epoch whose training error (1 - train top-1) is at most `error`."""
    return next((r["epoch"] for r in history if 1 - r["train_top1"] <= error), None)


def speedup_verdict(fast: list[int | None], slow: list[int | None], budget: int, held_at: float = 2.0) -> tuple[str, str]:
    """Verdict for "arm A reaches the target `held_at` times sooner than arm B", per seed: an
    arm that never reached it within `budget` epochs counts as budget + 1 (a lower bound)."""
    if any(f is None for f in fast):
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


@experiment("relu-vs-tanh", "ReLU networks reach 25 % training error on CIFAR-10 about six times faster (in "
                            "epochs) than the same network with tanh (Krizhevsky et al. 2012, Fig. 1)")
def relu_vs_tanh(scale: str, seeds: int, out: Path, log, overrides: dict) -> dict:
    from .train import recipe, train

    small = scale == "small"
    settings = dict(epochs=12 if small else 60, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9,
                    nesterov=False, weight_decay=0.0, schedule="none", augment=(),
                    train_per_class=1000 if small else None)
    kwargs = {"width": 0.5} if small else {}
    settings.update(overrides)
    target = 0.25
    runs, epochs = {}, {"relu": [], "tanh": []}
    for act in ("relu", "tanh"):
        for seed in range(seeds):
            cfg = recipe("cnn4", "cifar10", seed=seed, out=str(out / f"{act}-seed{seed}"),
                         model_kwargs={"activation": act, **kwargs}, **settings)
            start = time.perf_counter()
            history = train(cfg, log=lambda line: None)["history"]
            runs[f"{act}-seed{seed}"] = history
            epochs[act].append(first_epoch_below(history, target))
            log(f"{act} seed {seed}: {epochs[act][-1] or 'not'} epochs to {100 * target:.0f} % training error "
                f"({time.perf_counter() - start:.0f}s)")
    verdict, numbers = speedup_verdict(epochs["relu"], epochs["tanh"], settings["epochs"])
    rows = []
    for act in ("relu", "tanh"):
        reached = [e for e in epochs[act] if e is not None]
        final = [runs[f"{act}-seed{s}"][-1] for s in range(seeds)]
        rows.append({"arm": act, "epochs to 25 % training error": _mean_std(reached) if len(reached) == seeds
                     else f">{settings['epochs']}" if not reached else _mean_std(reached) + " (not all)",
                     "final training error": _mean_std([100 * (1 - r["train_top1"]) for r in final], "%"),
                     "final test error": _mean_std([100 * (1 - r["test_top1"]) for r in final], "%")})
    command = (f"cnnlab train cnn4 --dataset cifar10 --epochs {settings['epochs']} --optimizer sgd --lr 0.01 "
               "--momentum 0.9 --weight-decay 0 --schedule none --augment '' "
               + (f"--train-per-class {settings['train_per_class']} " if settings["train_per_class"] else "")
               + "--seed S --out DIR --config ARM.json  # ARM.json: {\"model_kwargs\": {\"activation\": \"tanh\""
               + (", \"width\": 0.5" if small else "") + "}}")
    return {"table": rows, "verdict": verdict, "numbers": numbers, "runs": runs, "commands": [command],
            "plot": ("train_top1", "training error", lambda r: 1 - r["train_top1"])}


def _mean_std(values: list[float], unit: str = "") -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}{unit}"
    return f"{statistics.mean(values):.4g} +- {statistics.stdev(values):.2g}{unit}"


def run_experiment(name: str, scale: str = "small", seeds: int = 1, out: str | os.PathLike | None = None,
                   log=print, **overrides) -> dict:
    """Run an experiment and write its report into `out` (default runs/experiments/NAME)."""
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
                                             "numbers": result["numbers"], "runs": result["runs"]}, indent=1))
    key, label, value = result["plot"]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for run, history in result["runs"].items():
        ax.plot([r["epoch"] for r in history], [value(r) for r in history], label=run)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(out / "curves.png", ".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _write(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)
