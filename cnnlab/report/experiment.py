"""The HTML pages of the experiments: an experiment's report.md as a page with its runs compared
(their curves at step resolution overlaid), and the gallery of all reports as one page; the
Markdown converted by Python-Markdown, its pictures put inside the page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from ..errors import CnnlabError
from .page import page
from .record import read_record
from .sections import comparison, curves

IMAGE = re.compile(r'<img alt="([^"]*)" src="([^":]+\.png)"\s*/?>')


def markdown_html(text: str, folder: Path) -> str:
    """Markdown as HTML (tables and fenced code understood); pictures it names by a path relative
    to `folder` are read into the page."""
    import markdown

    body = markdown.markdown(text, extensions=["tables", "fenced_code"])

    def inline(m: re.Match) -> str:
        path = folder / m.group(2)
        if not path.is_file():
            return f"<p><em>(picture {m.group(2)} missing)</em></p>"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<figure><img alt="{m.group(1)}" src="data:image/png;base64,{data}"></figure>'

    return IMAGE.sub(inline, body)


def split_title(text: str) -> tuple[str, str]:
    """(the first heading, the rest) of a Markdown text."""
    first, _, rest = text.partition("\n")
    return (first[2:].strip(), rest) if first.startswith("# ") else ("", text)


def experiment_page(folder: Path) -> str:
    """An experiment's report.html: its report.md, then its runs compared and overlaid."""
    title, text = split_title((folder / "report.md").read_text(encoding="utf-8"))
    records = []
    for run in sorted(p for p in folder.iterdir() if (p / "config.json").is_file()):
        try:
            records.append(read_record(run))
        except CnnlabError:  # a run that diverged before its first epoch ended: the report says so
            continue
    sections = [("Claim, verdict and results", markdown_html(text, folder))]
    if records:
        sections += [("Runs compared", comparison(records)), ("Curves of every run", curves(records))]
    lead = f"cnnlab experiment {title}: {len(records)} runs"
    return page(f"Experiment: {title}", lead, sections)


def gallery_page(markdown_file: Path) -> str:
    """The gallery of experiment reports (a Markdown page and its pictures) as one HTML page."""
    title, text = split_title(markdown_file.read_text(encoding="utf-8"))
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    intro, named = parts[0], list(zip(parts[1::2], parts[2::2]))
    folder = markdown_file.parent
    sections = [(name, markdown_html(body, folder)) for name, body in named]
    return page(title or "Experiments", re.sub(r"\s+", " ", intro.replace("`", "")).strip(), sections)
