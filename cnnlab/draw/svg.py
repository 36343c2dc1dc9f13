"""A small SVG canvas: shapes and text in document order, written as one standalone SVG file
whose text stays text (selectable, searchable, scalable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
# fills by kind of layer, the lectures' pale colours
FILL = {"conv": "#9ecae1", "pool": "#fdd0a2", "fc": "#c7e9c0", "input": "#e0e0e0", "other": "#dadaeb"}


@dataclass
class Canvas:
    """Shapes in the order they are drawn; the picture grows to hold them."""

    parts: list[str] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0

    def _grow(self, x: float, y: float) -> None:
        self.width, self.height = max(self.width, x), max(self.height, y)

    def polygon(self, points: list[tuple[float, float]], fill: str, stroke: str = "#444") -> None:
        for x, y in points:
            self._grow(x, y)
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.parts.append(f'<polygon points="{pts}" fill="{fill}" stroke="{stroke}" stroke-width="0.8"/>')

    def rect(self, x: float, y: float, w: float, h: float, fill: str, rx: float = 0) -> None:
        self._grow(x + w, y + h)
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" fill="{fill}" '
            'stroke="#444" stroke-width="0.8"/>'
        )

    def line(self, points: list[tuple[float, float]], arrow: bool = True, dashed: bool = False) -> None:
        for x, y in points:
            self._grow(x, y)
        d = "M " + " L ".join(f"{x:.1f} {y:.1f}" for x, y in points)
        extra = (' marker-end="url(#arrow)"' if arrow else "") + (' stroke-dasharray="4 3"' if dashed else "")
        self.parts.append(f'<path d="{d}" fill="none" stroke="#555" stroke-width="1"{extra}/>')

    def text(self, x: float, y: float, text: str, size: float = 10, anchor: str = "middle", bold: bool = False) -> None:
        width = len(text) * size * 0.6  # about right for a sans-serif face
        self._grow(x + {"start": width, "middle": width / 2, "end": 0}[anchor], y + size * 0.3)
        weight = ' font-weight="bold"' if bold else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{weight}>{escape(text)}</text>'
        )

    def svg(self, title: str, margin: float = 12) -> str:
        w, h = self.width + margin, self.height + margin
        return "\n".join(
            [
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" '
                f'viewBox="0 0 {w:.0f} {h:.0f}" font-family={quoteattr(FONT)}>',
                f"<title>{escape(title)}</title>",
                '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
                'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
                f'<rect width="{w:.0f}" height="{h:.0f}" fill="white"/>',
                *self.parts,
                "</svg>",
                "",
            ]
        )
