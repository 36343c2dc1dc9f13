"""`cnnlab experiment`: the lectures' claims run as controlled experiments."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CnnlabError
from ..experiments import EXPERIMENTS, run_experiment, write_gallery
from ..files import check_output
from .options import positive_int


def register(sub) -> None:
    p = sub.add_parser("experiment", help="run one of the lectures' claims as a controlled experiment")
    p.add_argument("name", nargs="?", help="the experiment (see --list), or all")
    p.add_argument("--list", action="store_true", help="list the experiments and their claims")
    p.add_argument(
        "--scale",
        choices=("small", "full"),
        default="small",
        help="small: minutes on a CPU, on data subsets; full: the paper's setting (a GPU)",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        help="runs per arm (mean +- std and the seeds' agreement in the report); default: the experiment's "
        "(small scale: 3 where an arm takes under a minute, else 1; full scale: 1)",
    )
    p.add_argument("--out", help="report folder (default runs/experiments/NAME; for all: the parent folder)")
    p.add_argument(
        "--gallery",
        metavar="PAGE.md",
        help="also write a Markdown page of every report found beside it, and the same page as HTML (PAGE.html)",
    )
    p.set_defaults(func=cmd_experiment)


def cmd_experiment(args: argparse.Namespace) -> int:
    if args.gallery is not None and not args.name:
        raise CnnlabError("--gallery writes the page of an experiment's reports: give an experiment, or all")
    if args.gallery is not None and Path(args.gallery).suffix.lower() != ".md":
        raise CnnlabError(f"--gallery {args.gallery}: name the Markdown page PAGE.md (PAGE.html is written beside it)")
    if args.gallery is not None:
        check_output(args.gallery, overwrite=True, flag="--gallery")  # before hours of training, not after
    if args.list or not args.name:
        for exp in EXPERIMENTS.values():
            seeds = f"[{exp.seeds} seed{'s' if exp.seeds > 1 else ''}]"
            print(f"{exp.name:16s} {seeds:9s} {exp.claim} ({exp.source})")
        return 0
    if args.name == "all":
        root = Path(args.out or Path("runs") / "experiments")
        for name in EXPERIMENTS:
            run_experiment(name, args.scale, args.seeds, root / name)
        if args.gallery:
            page = write_gallery(root, Path(args.gallery))
            print(f"wrote {page} and {page.with_suffix('.html')}")
        return 0
    out = Path(args.out or Path("runs") / "experiments" / args.name)
    run_experiment(args.name, args.scale, args.seeds, out)
    if args.gallery:
        page = write_gallery(out.parent, Path(args.gallery))
        print(f"wrote {page} and {page.with_suffix('.html')}")
    return 0
