"""`cnnlab draw`: a network in the lectures' pictures, as SVG, PNG or PDF."""

from __future__ import annotations

import argparse

from ..draw import STYLES, draw, save
from ..files import check_output
from .options import parse_size


def register(sub) -> None:
    p = sub.add_parser("draw", help="draw a network as the lectures do (SVG, PNG or PDF)")
    p.add_argument("source", metavar="MODEL_OR_RUN", help="a model name from `cnnlab models`, or a run directory")
    p.add_argument("--input", type=parse_size, metavar="CxHxW", help="input size (default: the model's)")
    p.add_argument(
        "--style",
        choices=STYLES,
        default="maps",
        help="maps: feature maps as boxes (LeNet/AlexNet figures); blocks: rows of layers, inception modules and "
        "residual blocks (VGG/GoogLeNet/ResNet figures); graph: the data-flow graph of any module",
    )
    p.add_argument("-o", "--output", required=True, help="the picture: FILE.svg, FILE.png or FILE.pdf")
    p.add_argument("--overwrite", action="store_true", help="replace the file if it exists")
    p.set_defaults(func=cmd_draw)


def cmd_draw(args: argparse.Namespace) -> int:
    out = check_output(args.output, args.overwrite)
    svg = draw(args.source, args.input, args.style)
    print(f"wrote {save(svg, out)} ({args.style})")
    return 0
