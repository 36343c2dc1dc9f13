"""`cnnlab report`: one self-contained HTML page of one or several training runs (page.py the
HTML, record.py what a run folder holds, sections.py each part of a page, figures.py the plots);
and the HTML pages of the experiments."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CnnlabError
from ..factory import load_model
from ..files import write_text
from . import sections
from .page import page
from .record import Record, read_record
from .sections import comparison, curves, headline

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
        result = sections.evaluated(r, device, data_dir)
        out += sections.classification(r, result)
        out += sections.inside(model, result["data"])
    elif r.task == "segmentation":
        out += sections.segmentation(r, device, data_dir)
    else:
        out.append(("Predicted against true", sections.regression(r, model)))
    out.append(("Architecture", sections.architecture(r, model)))
    if r.layer_stats:
        out.append(("Layer statistics", sections.layer_statistics(r)))
    return out
