"""Running an experiment and writing what it found: report.md (claim, results table with mean +-
std over seeds, verdict with its numbers, the exact commands), metrics.json (every epoch of every
run, and any measurement besides training), curves.png; and a gallery page of all the reports."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..errors import CnnlabError
from ..files import atomic_file, pyplot, save_figure, write_json, write_text
from ..report.experiment import experiment_page, gallery_page
from ..train import TrainConfig
from .base import EXPERIMENTS, Experiment, Outcome, Panel, Setup
from .verdicts import HELD, PARTLY


def run_experiment(
    name: str,
    scale: str = "small",
    seeds: int | None = None,
    out: str | os.PathLike | None = None,
    log=print,
    **overrides,
) -> Outcome:
    """Run an experiment and write its report into `out` (default runs/experiments/NAME).
    `seeds` per arm defaults to the experiment's (three at the small scale where an arm takes
    under a minute, else one). `overrides` (TrainConfig settings such as epochs or data_dir)
    apply to every run."""
    if name not in EXPERIMENTS:
        raise CnnlabError(
            f"unknown experiment {name!r}; `cnnlab experiment --list` lists them: {', '.join(EXPERIMENTS)}"
        )
    if scale not in ("small", "full"):
        raise CnnlabError(f"scale must be small or full, got {scale!r}")
    if seeds is not None and seeds < 1:
        raise CnnlabError(f"seeds must be at least 1, got {seeds}")
    unknown = sorted(set(overrides) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise CnnlabError(f"unknown setting(s) {', '.join(unknown)}; overrides are cnnlab.train.TrainConfig's fields")
    exp = EXPERIMENTS[name]
    seeds = seeds or exp.default_seeds(scale)
    out = Path(out or Path("runs") / "experiments" / name)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = exp.run(Setup(scale, seeds, out, log, overrides))
    result.seconds = time.perf_counter() - start
    write_report(exp, result, scale, seeds, out)
    log(f"{name}: {result.verdict} ({result.numbers}); report in {out / 'report.md'}")
    return result


def judged_parts(exp: Experiment, result: Outcome) -> list[dict]:
    """Each part of the claim with its criterion and what the runs said."""
    if len(result.findings) != len(exp.parts):
        raise RuntimeError(f"{exp.name}: {len(result.findings)} findings for {len(exp.parts)} parts")
    return [
        {"claim": p.claim, "criterion": p.criterion, "verdict": f.verdict, "numbers": f.numbers, "seeds": f.seeds}
        for p, f in zip(exp.parts, result.findings)
    ]


def claim_lines(m: dict) -> list[str]:
    """The claim, its criterion per part, and the verdict per part, from a report's metrics.json
    (the Markdown of report.md and of the gallery)."""
    parts = m["parts"]
    failed = [f"{p['claim']}: {p['verdict']}" for p in parts if p["verdict"] != HELD]
    summary = f" - {'; '.join(failed)}" if failed and m["verdict"] == PARTLY else ""
    lines = [f"**Claim.** {m['claim']} ({m['source']})", "", "**Criterion.**", ""]
    lines += [f"{i}. {p['claim']}: {p['criterion']}." for i, p in enumerate(parts, 1)]
    lines += ["", f"**Verdict: {m['verdict']}**{summary}", ""]
    lines += [
        f"{i}. {p['claim']}: **{p['verdict']}** - {p['numbers']}" + (f" ({p['seeds']})" if p["seeds"] else "") + "."
        for i, p in enumerate(parts, 1)
    ]
    return lines + [""]


def table_lines(rows: list[dict]) -> list[str]:
    header = list(rows[0])
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows),
    ]


def write_report(exp: Experiment, result: Outcome, scale: str, seeds: int, out: Path) -> None:
    """report.md (claim, criterion, verdict per part, table, curves, commands), metrics.json and
    curves.png in `out`."""
    meta = {
        "experiment": exp.name,
        "claim": exp.claim,
        "source": exp.source,
        "scale": scale,
        "seeds": seeds,
        "verdict": result.verdict,
        "parts": judged_parts(exp, result),
        "numbers": result.numbers,
        "table": result.table,
        "seconds": round(result.seconds, 1),
    }
    lines = [
        f"# {exp.name}",
        "",
        *claim_lines(meta),
        f"Scale `{scale}`, {seeds} seed(s), {result.seconds:.0f} s.",
        "",
        *table_lines(result.table),
    ]
    lines += [
        "",
        "![curves](curves.png)",
        "",
        "Commands (one per run):",
        "",
        "```bash",
        *result.commands,
        f"cnnlab experiment {exp.name} --scale {scale} --seeds {seeds}  # all of it",
        "```",
        "",
    ]
    write_text(out / "report.md", "\n".join(lines))
    write_json(out / "metrics.json", {**meta, "measurements": result.measurements, "runs": result.runs}, indent=1)
    plot_panels(result.panels, out / "curves.png")
    write_text(out / "report.html", experiment_page(out))


def write_gallery(results: Path, page: Path) -> Path:
    """A Markdown page of every experiment report under `results` (folders NAME/ with
    metrics.json and curves.png): claim, verdict, table and plot, the command to regenerate;
    the plots are copied next to the page into PAGE_STEM/NAME.png. The same page in HTML, the
    plots inside it, is written beside it (PAGE_STEM.html)."""
    images = page.parent / page.stem
    images.mkdir(parents=True, exist_ok=True)
    lines = [
        "# The lectures' claims, run",
        "",
        "Each section is one `cnnlab experiment NAME` at the small scale (a 2-core CPU, minutes; three seeds "
        "where an arm takes under a minute, else one), committed from a real run. Each claim is split into the "
        "parts its source asserts, and each part's criterion was written before the runs. The full report of a "
        "run (report.md, metrics.json with every epoch, curves.png) lands in its folder; `--scale full` is the "
        "paper's setting, for a GPU.",
        "",
    ]
    done = []
    for name in EXPERIMENTS:
        path = results / name / "metrics.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        with atomic_file(images / f"{name}.png", ".png") as tmp:
            shutil.copyfile(results / name / "curves.png", tmp)
        lines += [
            f"## {name}",
            "",
            *claim_lines(m),
            *table_lines(m["table"]),
            "",
            f"![{name}]({images.name}/{name}.png)",
            "",
            f"`cnnlab experiment {name} --scale {m['scale']} --seeds {m['seeds']}`"
            + (f" ({m['seconds']:.0f} s)" if "seconds" in m else ""),
            "",
        ]
        done.append(name)
    missing = [n for n in EXPERIMENTS if n not in done]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)}.", ""]
    write_text(page, "\n".join(lines))
    write_text(page.with_suffix(".html"), gallery_page(page))
    return page


def plot_panels(panels: list[Panel], path: Path) -> None:
    """The report's curves, one plot per panel side by side."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, (xs, ys) in panel.series.items():
            ax.plot(xs, ys, label=label.removesuffix("-seed0"), marker="." if len(xs) < 15 else None)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
