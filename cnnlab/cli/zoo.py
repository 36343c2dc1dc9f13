"""`cnnlab models`, `summary`, `compare` and `conv-size`: the zoo and the analyser."""

from __future__ import annotations

import argparse
import json

from ..analysis import analyze, conv_output_size, conv_transpose_output_size, pool_output_size, si, training_memory
from ..errors import CnnlabError
from ..factory import build_for_analysis, count_params
from ..registry import get_model_info, list_models
from .options import DTYPES, key_value, non_negative_int, parse_size, positive_int


def register(sub) -> None:
    p = sub.add_parser("models", help="list the model zoo with parameter counts")
    p.add_argument("pattern", nargs="?", help="shell-style filter such as 'resnet*'")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="per-layer shapes, parameters, memory, MACs and receptive field")
    p.add_argument("name", help="a model name from `cnnlab models`, or a run directory (its model)")
    analysis_options(p)
    p.add_argument("--format", choices=("table", "markdown", "json", "csv"), default="table")
    p.add_argument(
        "--optimizer",
        choices=("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"),
        help="also estimate the memory of a training step with this optimiser",
    )
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("compare", help="side-by-side totals of several models")
    p.add_argument("names", nargs="+", metavar="NAME", help="model names or run directories")
    analysis_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("conv-size", help="output size of a convolution, pooling or transposed convolution")
    p.add_argument("size", type=positive_int, help="input size along one axis")
    p.add_argument("kernel", type=positive_int)
    p.add_argument("--stride", type=positive_int, default=None, help="default 1 (pooling: the kernel size)")
    p.add_argument("--padding", type=non_negative_int, default=0)
    p.add_argument("--dilation", type=positive_int, default=1)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--pool", action="store_true", help="pooling (stride defaults to the kernel size)")
    kind.add_argument("--transposed", action="store_true", help="transposed convolution")
    rounding = p.add_mutually_exclusive_group()
    rounding.add_argument("--ceil", action="store_true", help="pooling with ceil rounding (Caffe, ceil_mode=True)")
    rounding.add_argument(
        "--floor", action="store_true", help="round a size that does not fit down, as PyTorch does (default: an error)"
    )
    p.add_argument("--output-padding", type=non_negative_int, default=0)
    p.set_defaults(func=cmd_conv_size)


def analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=parse_size, metavar="CxHxW", help="input size (default: the model's)")
    p.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--mode", choices=("eval", "train"), default="eval")
    p.add_argument(
        "--model-kwargs",
        nargs="+",
        type=key_value,
        metavar="KEY=VALUE",
        help="arguments of the model's builder, e.g. width=0.25 (values are JSON or text)",
    )


def cmd_models(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        raise CnnlabError(f"no model matches {args.pattern!r}; `cnnlab models` lists them all")
    rows = [("name", "params", "input", "classes", "year", "description")]
    for name in names:
        info = get_model_info(name)
        rows.append(
            (
                name,
                f"{count_params(name):,}",
                "x".join(map(str, info.input_size)),
                str(info.num_classes),
                str(info.year),
                info.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = [c.rjust(w) if i in (1, 3) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells + [r[-1]]).rstrip())
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    if args.optimizer and args.format == "csv":
        raise CnnlabError(
            "--optimizer adds a line the csv format has no place for; give --format table, markdown or json"
        )
    model, size = build_for_analysis(args.name, args.model_kwargs, args.input)
    a = analyze(model, size, args.batch, DTYPES[args.dtype], args.mode)
    if args.format == "json":
        data = a.to_dict()
        if args.optimizer:
            data["training_memory"] = training_memory(model, size, args.batch, args.optimizer, DTYPES[args.dtype])
        print(json.dumps(data, indent=2))
        return 0
    print(a.table("text" if args.format == "table" else args.format), end="")
    if args.optimizer and args.format != "csv":
        mem = training_memory(model, size, args.batch, args.optimizer, DTYPES[args.dtype])
        parts = ", ".join(f"{k.replace('_', ' ')} {v / 2**20:,.1f} MiB" for k, v in mem.items() if k != "total")
        print(f"training memory ({args.optimizer}, batch {args.batch}): {mem['total'] / 2**20:,.1f} MiB = {parts}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    rows = [("model", "input", "params", "MACs", "FLOPs", "activations", "act. memory", "depth")]
    for name in args.names:
        a = analyze(*build_for_analysis(name, args.model_kwargs, args.input), args.batch, DTYPES[args.dtype], args.mode)
        t = a.totals
        rows.append(
            (
                name,
                "x".join(map(str, a.input_size)),
                f"{t['params']:,}",
                f"{si(t['macs'])}MAC",
                f"{si(t['flops'])}FLOP",
                f"{t['activations']:,}",
                f"{si(t['activation_bytes'], 1024)}B",
                str(t["depth"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print("depth: layers with weights on the longest input-to-output path; MAC: multiply-add, FLOPs = 2 x MACs")
    return 0


def cmd_conv_size(args: argparse.Namespace) -> int:
    if args.ceil and not args.pool:
        raise CnnlabError("--ceil rounds pooling (Caffe's ceil_mode); give --pool as well")
    if args.output_padding and not args.transposed:
        raise CnnlabError("--output-padding is for a transposed convolution; give --transposed as well")
    n, f, p, d = args.size, args.kernel, args.padding, args.dilation
    s = args.stride or (f if args.pool else 1)
    if args.transposed:
        out = conv_transpose_output_size(n, f, s, p, args.output_padding, d)
        print(f"({n} - 1)*{s} - 2*{p} + {d}*({f} - 1) + {args.output_padding} + 1 = {out}")
        return 0
    exact = (n + 2 * p - d * (f - 1) - 1) / s + 1
    formula = f"({n} + 2*{p} - {d}*({f} - 1) - 1) / {s} + 1"
    if args.pool:
        out = pool_output_size(n, f, s, p, d, ceil_mode=args.ceil, strict=not args.floor)
    else:
        out = conv_output_size(n, f, s, p, d, strict=not args.floor)
    if out != exact:  # rounded: say which way, and what it leaves out
        unused = "" if args.ceil else f": the last {n + 2 * p - d * (f - 1) - 1 - (out - 1) * s} pixel(s) unused"
        print(f"{formula} = {exact:g} -> {out} ({'ceil' if args.ceil else 'floor, as PyTorch'}{unused})")
    else:
        print(f"{formula} = {out}")
    return 0
