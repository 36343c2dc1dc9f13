"""`cnnlab export`: a run or a zoo model as ONNX or TorchScript, checked after writing."""

from __future__ import annotations

import argparse

from ..export import FORMATS, export


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run or a zoo model as ONNX or TorchScript (checked after writing)")
    p.add_argument("source", metavar="RUN_OR_NAME", help="a run directory or .safetensors file, or a model name")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--overwrite", action="store_true", help="replace the file if it exists")
    p.add_argument("--weights", help="for a model name: imagenet, a weights file or a run (default: untrained)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    r = export(args.source, args.format, args.output, weights=args.weights, overwrite=args.overwrite)
    check = f"; outputs match PyTorch within {r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
    print(
        f"wrote {r['file']} ({r['format']}, {r['bytes']:,} bytes, {r['model']}, input (N, "
        f"{', '.join(map(str, r['input_size']))})){check}"
    )
    return 0
