"""What `analyze` returns: a row per layer, totals and a breakdown by kind, as text, Markdown,
CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

UNITS = {
    "macs": "multiply-adds of conv, transposed conv, linear/matmul/einsum, attention (projections, "
    "query-key products, weighted values), recurrent (RNN, LSTM, GRU) and distance layers; "
    "bias adds, norm, pooling, activations, softmax, LRN, dropout, adds and concatenations count 0",
    "flops": "2 x macs",
    "activations": "number of output values",
    "activation_bytes": "bytes of outputs that need memory of their own (0 for in-place ops and views); "
    "the totals include the input",
    "receptive_field": "input pixels per axis (H, W) that one output value depends on; null: the whole input "
    "(null for one axis: the whole of that axis)",
    "jump": "input pixels per axis between neighbouring output values",
}

KINDS = ("conv", "fc", "norm", "pool", "other")


@dataclass
class LayerRow:
    """One leaf module call or one functional op outside a leaf module."""

    name: str
    type: str
    kind: str
    output_shape: tuple[int, ...]
    params: int = 0
    trainable_params: int = 0
    activations: int = 0
    activation_bytes: int = 0
    macs: int = 0
    receptive_field: tuple[int, ...] | None = None
    jump: tuple[float, ...] | None = None
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | None = None
    dilation: tuple[int, ...] | None = None
    groups: int | None = None


@dataclass
class Analysis:
    """The result of `analyze`: per-layer rows, totals and a breakdown by kind."""

    model: str
    input_size: tuple[int, ...]
    batch_size: int
    dtype: str
    mode: str
    layers: list[LayerRow]
    totals: dict[str, int] = field(default_factory=dict)
    output_shape: tuple[int, ...] = ()
    unused: tuple[str, ...] = ()  # modules with parameters that this mode does not run

    def breakdown(self) -> dict[str, dict[str, int]]:
        """Parameters and MACs by layer kind (conv, fc, norm, pool, other)."""
        out = {k: {"params": 0, "macs": 0} for k in KINDS}
        for row in self.layers:
            out[row.kind]["params"] += row.params
            out[row.kind]["macs"] += row.macs
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "mode": self.mode,
            "output_shape": list(self.output_shape),
            "units": UNITS,
            "totals": self.totals,
            "breakdown": self.breakdown(),
            "unused": list(self.unused),
            "layers": [asdict(r) for r in self.layers],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def _cells(self, row: LayerRow) -> list[str]:
        rf = "-" if row.receptive_field is None else _fmt_axes(row.receptive_field)
        return [
            row.name,
            row.type,
            "x".join(map(str, row.output_shape)),
            f"{row.params:,}",
            f"{row.activations:,}",
            f"{row.activation_bytes:,}",
            f"{row.macs:,}",
            rf,
        ]

    HEADER = ["layer", "type", "output", "params", "activations", "act. bytes", "MACs", "RF"]

    def table(self, fmt: str = "text") -> str:
        """The per-layer table and totals as plain text, Markdown or CSV."""
        rows = [self._cells(r) for r in self.layers]
        t = self.totals
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(
                [
                    "layer",
                    "type",
                    "kind",
                    "output",
                    "params",
                    "trainable_params",
                    "activations",
                    "activation_bytes",
                    "macs",
                    "receptive_field",
                    "jump",
                ]
            )
            for r in self.layers:
                w.writerow(
                    [
                        r.name,
                        r.type,
                        r.kind,
                        "x".join(map(str, r.output_shape)),
                        r.params,
                        r.trainable_params,
                        r.activations,
                        r.activation_bytes,
                        r.macs,
                        "" if r.receptive_field is None else _fmt_axes(r.receptive_field),
                        "" if r.jump is None else _fmt_axes(r.jump),
                    ]
                )
            return buf.getvalue()
        summary = [
            f"model {self.model}, input {self.batch_size}x"
            + "x".join(map(str, self.input_size))
            + f", {self.dtype}, {self.mode} mode",
            f"params {t['params']:,} (trainable {t['trainable_params']:,}), "
            f"MACs {t['macs']:,} = {si(t['macs'])}MAC, FLOPs {si(t['flops'])}FLOP",
            f"activations {t['activations']:,} values, {si(t['activation_bytes'], 1024)}B "
            "(input plus outputs with memory of their own)",
        ]
        kinds = self.breakdown()
        total_p, total_m = max(t["params"], 1), max(t["macs"], 1)
        split = ", ".join(
            f"{k} {100 * v['params'] / total_p:.1f}% params / {100 * v['macs'] / total_m:.1f}% MACs"
            for k, v in kinds.items()
            if v["params"] or v["macs"]
        )
        summary.append("by kind: " + split)
        if t.get("unused_params"):
            summary.append(
                f"not run in {self.mode} mode: {t['unused_params']:,} params "
                f"({100 * t['unused_params'] / total_p:.1f}%) in {', '.join(self.unused)}"
            )
        if fmt == "markdown":
            lines = ["| " + " | ".join(self.HEADER) + " |", "|" + "---|" * len(self.HEADER)]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
            return "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary) + "\n"
        if fmt != "text":
            raise ValueError(f"format must be text, markdown or csv, got {fmt!r}")
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(self.HEADER)]
        right = {3, 4, 5, 6, 7}

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        out = [line(self.HEADER), line(["-" * w for w in widths])] + [line(r) for r in rows]
        return "\n".join(out) + "\n\n" + "\n".join(summary) + "\n"

    def __str__(self) -> str:
        return self.table()


def _fmt_axes(v) -> str:
    """7, or 7x5 where the axes differ; "all" for an axis seen whole."""
    v = ["all" if x is None else int(x) if float(x).is_integer() else round(x, 3) for x in v]
    return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))


def si(n: float, base: int = 1000) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < base:
            return f"{n:.2f} {unit}" if unit else f"{n:.0f} "
        n /= base
    return f"{n:.2f} P"
