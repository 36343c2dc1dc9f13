"""The `cnnlab` command: argparse subcommands that call the library. Each command group is a
module with `register(subparsers)`; `main` turns every error a user can cause into one line."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from .. import __version__
from ..errors import CnnlabError
from . import backprop, draw, evaluation, experiments, export, report, reproduce, style, training, transfer, zoo

# errors of the place a file goes, not of the program: each with what to do
PLACE_ERRORS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EROFS: "choose another path",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EEXIST: "a file is in the way of a folder: choose another path",
    errno.ENOTDIR: "a file is in the way of a folder: choose another path",
    errno.EISDIR: "a folder is in the way of a file: choose another path",
    errno.ENAMETOOLONG: "choose a shorter name",
}
# in the order `--help` lists them
GROUPS = (zoo, training, evaluation, transfer, style, experiments, reproduce, export, draw, report, backprop)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (what was wrong and where to look), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cnnlab", description="The landmark CNNs, exact and fast.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    parser.commands = sub.choices
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command's own parser, which points to its own --help
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except CnnlabError as e:
        if args.debug:
            raise
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnlab models | head`: the reader has gone, as with any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush says nothing
        return 128 + 13  # SIGPIPE
    except OSError as e:  # the place, not the program: a full disk, a forbidden or read-only folder
        if args.debug or e.errno not in PLACE_ERRORS:
            raise
        print(
            f"cnnlab: error: {str(e.filename) + ': ' if e.filename else ''}{e.strerror.lower()}; "
            f"{PLACE_ERRORS[e.errno]}",
            file=sys.stderr,
        )
        return 2
