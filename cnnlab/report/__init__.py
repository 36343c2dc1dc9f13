"""`cnnlab report`: one self-contained HTML page of one or several training runs (page.py the
HTML, record.py what a run folder holds, sections.py each part of a run, figures.py the plots);
and the HTML pages of the experiments."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CnnlabError
from ..factory import load_model
from ..files import write_text
from . import sections
from .figures import curves_figure
from .page import Markup, esc, figure, img, page, png_of, table
from .record import Record, read_record

__all__ = ["read_record", "report_html", "write_report"]


def write_report(
    runs: list[str | os.PathLike],
    out: str | os.PathLike,
    device: str = "auto",
    data_dir: str | None = None,
    log=print,
) -> Path:
    """Write the report of `runs` (run folders) to `out`, atomically; returns its path."""
    if not runs:
        raise CnnlabError("give at least one run folder to report on")
    records = [read_record(r) for r in runs]
    html = report_html(records, device, data_dir, log)
    write_text(out, html)
    return Path(out)


def report_html(records: list[Record], device: str = "auto", data_dir: str | None = None, log=print) -> str:
    """The page: for several runs their comparison and overlaid curves first, then each run."""
    parts: list[tuple[str, str]] = []
    if len(records) > 1:
        parts += [("Comparison", comparison(records)), ("Curves, overlaid", curves(records))]
    for r in records:
        log(f"report: {r.path}")
        prefix = f"{r.name}: " if len(records) > 1 else ""
        parts += [(prefix + title, content) for title, content in run_sections(r, device, data_dir)]
    if len(records) == 1:
        r = records[0]
        title = f"{r.config['model']} on {r.config['dataset']}"
        lead = f"Run {r.path} - {headline(r)}" + ("" if r.finished else " (not finished: its last checkpoint)")
    else:
        title = f"{len(records)} runs compared"
        lead = ", ".join(f"{r.name} ({headline(r)})" for r in records)
    return page(title, lead, parts)


def run_sections(r: Record, device: str, data_dir: str | None) -> list[tuple[str, str]]:
    """The sections of one run, in reading order."""
    model = load_model(r.weights).eval()
    out = [("Run", sections.overview(r)), ("Training curves", curves([r]))]
    if r.task == "classification":
        out += sections.classification(r, device, data_dir)
        out += sections.inside(r, model, data_dir)
    elif r.task == "segmentation":
        out += sections.segmentation(r, device, data_dir)
    else:
        out.append(("Predicted against true", sections.regression(r, model)))
    out.append(("Architecture", sections.architecture(r, model)))
    if r.layer_stats:
        out.append(("Layer statistics", sections.layer_statistics(r)))
    return out


def curves(records: list[Record]) -> str:
    steps = all(r.steps for r in records)
    return figure(
        img(png_of(curves_figure(records), dpi=90), "training curves"),
        "The training loss of every step (faint), its running mean and each epoch's mean (at the "
        "epoch's middle; the loss of the batches as they were seen, augmented, with dropout on), the "
        "test loss after each epoch, and the learning rate of every step."
        if steps
        else "Per epoch: this run recorded no steps (it was trained by an older version).",
    )


def headline(r: Record) -> str:
    """The final test result in a few words."""
    last = r.history[-1]
    if r.task == "segmentation":
        return f"test mean IoU {100 * last['test_miou']:.2f} %"
    if r.task == "classification":
        return f"test top-1 {100 * last['test_top1']:.2f} % after {last['epoch']} epochs"
    return f"test RMSE {last['test_rmse']:.4g} after {last['epoch']} epochs"


def comparison(records: list[Record]) -> str:
    """One row per run, the way TensorBoard lists runs: what it was and where it ended."""
    rows = []
    for r in records:
        last, cfg = r.history[-1], r.config
        quality = "test_miou" if r.task == "segmentation" else "test_top1" if r.task == "classification" else None
        best = (
            max(r.history, key=lambda row: row[quality])
            if quality
            else min(r.history, key=lambda row: row["test_rmse"])
        )
        rows.append(
            [
                r.name,
                cfg["model"],
                cfg["dataset"],
                f"{cfg['optimizer']} lr {cfg['lr']:g}, {cfg['schedule']}",
                last["epoch"],
                f"{last['train_loss']:.4f}",
                f"{last['test_loss']:.4f}",
                headline(r),
                f"{100 * best[quality]:.2f} % (epoch {best['epoch']})"
                if quality
                else f"{best['test_rmse']:.4g} (epoch {best['epoch']})",
                f"{last.get('time', 0):.0f} s",
            ]
        )
    return table(
        ["run", "model", "dataset", "optimiser", "epochs", "train loss", "test loss", "final", "best", "time"],
        rows,
        numeric={4, 5, 6, 9},
    )


__all__ += ["Markup", "esc"]
