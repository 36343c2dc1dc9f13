"""One self-contained HTML page: its parts written as text, pictures inline (PNG as data: URIs,
SVG as markup), one style sheet, no script, no font or file fetched from anywhere."""

from __future__ import annotations

import base64
import html
import io

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1d232b; background: #fff; margin: 0 auto; max-width: 1180px; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #d6dde6; }
h3 { font-size: 16px; margin: 22px 0 8px; }
p.lead { color: #4a5563; margin: 0 0 16px; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #f4f6f9; border: 1px solid #dfe4ea; border-radius: 6px; padding: 10px 12px;
      white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13.5px; }
th, td { border-bottom: 1px solid #e3e8ee; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f3f7; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 10px 0 18px; }
figure img, figure svg { max-width: 100%; height: auto; }
figcaption { color: #4a5563; font-size: 13px; margin-top: 4px; }
.scroll { max-height: 520px; overflow: auto; border: 1px solid #e3e8ee; border-radius: 6px; }
.scroll table { margin: 0; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; }
.tile { width: 118px; font-size: 12px; text-align: center; }
.tile img { width: 96px; height: 96px; image-rendering: pixelated; border: 1px solid #cfd6df; }
.bar { display: inline-block; height: 10px; background: #3b78c3; vertical-align: middle; }
.held { color: #1d7a3a; font-weight: 600; } .failed { color: #b3261e; font-weight: 600; }
nav { font-size: 13.5px; margin: 10px 0 0; } nav a { margin-right: 12px; color: #2a5ea8; }
@media print { body { max-width: none; padding: 0; } .scroll { max-height: none; overflow: visible; }
               h2 { break-after: avoid; } figure, table { break-inside: avoid; } nav { display: none; } }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def png_of(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (the figure closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def img(png: bytes, alt: str, css_class: str = "") -> str:
    """An <img> whose picture is in the page itself."""
    data = base64.b64encode(png).decode("ascii")
    cls = f' class="{css_class}"' if css_class else ""
    return f'<img{cls} alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def figure(content: str, caption: str = "") -> str:
    return f"<figure>{content}" + (f"<figcaption>{esc(caption)}</figcaption>" if caption else "") + "</figure>"


def inline_svg(svg: str) -> str:
    """SVG markup inside the page, without its XML declaration."""
    text = svg.strip()
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :].lstrip()
    return text


def table(header: list[str] | None, rows: list[list], numeric: set[int] = frozenset(), scroll: bool = False) -> str:
    """A table; the columns in `numeric` right-aligned. Cells are text, or markup given as Markup."""

    def cell(tag: str, i: int, value) -> str:
        cls = ' class="num"' if i in numeric else ""
        return f"<{tag}{cls}>{value if isinstance(value, Markup) else esc(value)}</{tag}>"

    head = "<thead><tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    out = f"<table>{head}<tbody>{body}</tbody></table>"
    return f'<div class="scroll">{out}</div>' if scroll else out


class Markup(str):
    """Text that is already HTML (not escaped again)."""


def page(title: str, lead: str, sections: list[tuple[str, str]]) -> str:
    """The whole document: a title, a line under it, links to the sections, the sections."""
    nav = "".join(f'<a href="#{anchor(t)}">{esc(t)}</a>' for t, _ in sections)
    body = "".join(f'<section id="{anchor(t)}"><h2>{esc(t)}</h2>{content}</section>' for t, content in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # nothing may leave the file: no request to any address, a script included
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">"
        f"<style>{STYLE}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="lead">{esc(lead)}</p><nav>{nav}</nav>{body}</body></html>\n'
    )


def anchor(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
