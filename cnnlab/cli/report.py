"""`cnnlab report`: one self-contained HTML page of one run or several."""

from __future__ import annotations

import argparse

from ..files import check_output
from ..report import write_report


def register(sub) -> None:
    p = sub.add_parser("report", help="one HTML page of one or several runs (opens by double-click, works offline)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (the --out of `cnnlab train`)")
    p.add_argument("-o", "--output", default="report.html", help="the page to write (default: report.html)")
    p.add_argument("--overwrite", action="store_true", help="replace the file if it exists")
    p.add_argument("--device", default="auto", help="where to evaluate the runs (default: a GPU if there is one)")
    p.add_argument("--data-dir", help="where the datasets are (default: $CNNLAB_DATA, else ~/.cache/cnnlab/data)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    out = check_output(args.output, args.overwrite)
    path = write_report(args.runs, out, args.device, args.data_dir)
    print(f"wrote {path} ({len(args.runs)} run{'s' * (len(args.runs) > 1)})")
    return 0
