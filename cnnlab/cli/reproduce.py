"""`cnnlab reproduce`: the papers' training results, the paper's number and ours side by side."""

from __future__ import annotations

import argparse

from ..errors import CnnlabError
from ..reproduce import ENTRIES, reproduce
from .options import positive_int


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="train a paper's network by the paper's recipe; its number and ours")
    p.add_argument("name", nargs="?", help="the result (see --list)")
    p.add_argument("--list", action="store_true", help="list the results: paper, model, dataset, number")
    p.add_argument("--seeds", type=positive_int, default=1, help="runs, seeds 0 .. N-1 (mean, spread and each)")
    p.add_argument("--out", help="folder of the runs, report.md and result.json (default runs/reproduce/NAME)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--data-dir", help="dataset root (default: $CNNLAB_DATA, else ~/.cache/cnnlab/data)")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="on CUDA: each training step as one CUDA graph (the same recipe, several times faster for small networks)",
    )
    p.add_argument("--max-steps", type=positive_int, help="a quick check that it runs (the report says so)")
    p.add_argument("--overwrite", action="store_true", help="replace the runs already in --out")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        if args.name:
            raise CnnlabError("give a result to run or --list, not both")
        for e in ENTRIES.values():
            number = f"{e.value:.2f} {e.unit}" if e.value is not None else "(a figure)"
            print(f"{e.name:18s} {e.model:10s} {e.dataset:8s} {number:18s} {e.device:4s} {e.cite}, {e.where}")
            print(f"{'':18s} {e.metric}")
        return 0
    settings = {k: v for k, v in (("device", args.device), ("data_dir", args.data_dir)) if v is not None}
    if args.max_steps:
        settings["max_steps"] = args.max_steps
    if args.cuda_graph:
        settings["cuda_graph"] = True
    reproduce(args.name, args.seeds, args.out, overwrite=args.overwrite, **settings)
    return 0
