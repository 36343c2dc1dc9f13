"""The `cnnlab` command: argparse subcommands that call the library."""

from __future__ import annotations

import argparse
import sys

import torch

from . import __version__
from .errors import CnnlabError
from .registry import create_model, get_model_info, list_models


def count_params(name: str) -> int:
    """Parameters of a registered model, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        model = create_model(name)
    return sum(p.numel() for p in model.parameters())


def cmd_models(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        raise CnnlabError(f"no model matches {args.pattern!r}; `cnnlab models` lists them all")
    rows = [("name", "params", "input", "classes", "year", "description")]
    for name in names:
        info = get_model_info(name)
        rows.append((name, f"{count_params(name):,}", "x".join(map(str, info.input_size)),
                     str(info.num_classes), str(info.year), info.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = [c.rjust(w) if i in (1, 3) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells + [r[-1]]).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description="The landmark CNNs, exact and fast.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("models", help="list the model zoo with parameter counts")
    p.add_argument("pattern", nargs="?", help="shell-style filter such as 'resnet*'")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CnnlabError as e:
        if args.debug:
            raise
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
