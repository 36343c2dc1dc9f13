"""Running one of the papers' results: the paper's recipe once per seed, the paper's number and
ours side by side, and what was done in report.md and result.json."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from ..errors import CnnlabError
from ..files import write_json, write_text
from ..train import TrainConfig, recipe, train
from ..train.folder import check_before_training
from .entries import ENTRIES, Entry

# settings that change where and how fast a recipe runs, not the recipe
HOW_IT_RUNS = ("device", "data_dir", "cuda_graph")


def reproduce(
    name: str, seeds: int = 1, out: str | os.PathLike | None = None, log=print, overwrite: bool = False, **overrides
) -> dict:
    """Train `name`'s recipe with seeds 0 .. seeds-1 (a run folder each, in `out`, default
    runs/reproduce/NAME) and write report.md and result.json there. `overrides` (TrainConfig
    settings: device, data_dir, cuda_graph, or a quick check's max_steps) apply to every run; any
    that changes the recipe is named in the report. Returns what result.json holds."""
    entry = find(name)
    if seeds < 1:
        raise CnnlabError(f"seeds must be at least 1, got {seeds}")
    unknown = sorted(set(overrides) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise CnnlabError(f"unknown setting(s) {', '.join(unknown)}; overrides are cnnlab.train.TrainConfig's fields")
    out = Path(out or Path("runs") / "reproduce" / name)
    runs = [
        {**entry.recipe, **overrides, "overwrite": overwrite, "seed": s, "out": str(out / f"seed{s}")}
        for s in range(seeds)
    ]
    configs = [recipe(entry.model, entry.dataset, **settings) for settings in runs]
    for cfg in configs:  # every run's settings and folder before the first starts
        check_before_training(cfg)
    start, ours = time.perf_counter(), []
    for i, cfg in enumerate(configs, 1):
        log(f"{name}: run {i} of {seeds} (seed {cfg.seed}), run folder {cfg.out}")
        result = train(cfg, log=log)
        ours.append(round(100 * (1 - result["test"]["top1"]), 2))
    changed = {k: v for k, v in overrides.items() if k not in HOW_IT_RUNS}
    summary = {
        "name": name,
        "metric": entry.metric,
        "paper": entry.value,
        "source": entry.paper,
        "ours": ours,
        "mean": round(statistics.fmean(ours), 2),
        "std": round(statistics.stdev(ours), 2) if len(ours) > 1 else None,
        "unit": entry.unit,
        "recipe": {k: v for k, v in vars(configs[0]).items() if k not in ("seed", "out", "overwrite")},
        "changed_from_the_paper_recipe": changed,
        "deviations": list(entry.deviations),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(out / "result.json", summary)
    write_text(out / "report.md", report(entry, summary))
    log(f"{name}: {side_by_side(summary)}; report in {out / 'report.md'}")
    return summary


def find(name: str) -> Entry:
    if name not in ENTRIES:
        raise CnnlabError(f"no paper result named {name!r}; `cnnlab reproduce --list` lists them: {', '.join(ENTRIES)}")
    return ENTRIES[name]


def side_by_side(s: dict) -> str:
    """'paper 0.95, ours 1.70 (seeds: 1.70) % test error'."""
    paper = f"{s['paper']:.2f}" if s["paper"] is not None else "a figure"
    spread = f" +- {s['std']:.2f}" if s["std"] is not None else ""
    each = ", ".join(f"{v:.2f}" for v in s["ours"])
    return f"paper {paper}, ours {s['mean']:.2f}{spread} (seeds: {each}) {s['unit']}"


def report(entry: Entry, s: dict) -> str:
    """report.md: the paper's number and ours, the recipe, the deviations, how to run it again."""
    lines = [
        f"# {entry.name}",
        "",
        f"**Paper.** {entry.paper}: {entry.metric}.",
        "",
        f"**Result.** {side_by_side(s)}; {len(s['ours'])} seed(s), {s['seconds']:.0f} s.",
        "",
    ]
    if s["changed_from_the_paper_recipe"]:
        changed = ", ".join(f"{k}={v}" for k, v in s["changed_from_the_paper_recipe"].items())
        lines += [f"**Not the paper's recipe**: changed here ({changed}); a check that it runs, not a result.", ""]
    lines += ["## Recipe", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in entry.recipe.items()]
    lines += ["", "## Deviations from the paper", ""] + [f"- {d}" for d in entry.deviations]
    if entry.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in entry.notes]
    lines += ["", "## Run again", "", f"    cnnlab reproduce {entry.name} --seeds {len(s['ours'])}", ""]
    return "\n".join(lines)
