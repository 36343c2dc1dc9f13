"""`cnnlab backprop`: one batch through a model's NumPy network, the backward rule of each layer,
and with --check the gradients against autograd and finite differences."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..factory import create_model, load_model
from ..registry import get_model_info
from ..scratch.check import AUTOGRAD_TOLERANCE, FINITE_TOLERANCE, walk
from .options import parse_size


def register(sub) -> None:
    p = sub.add_parser("backprop", help="backpropagation by hand, layer by layer, checked against autograd")
    p.add_argument(
        "model", metavar="MODEL_OR_RUN", help="mlp, lenet5_modern, cnn4, a CIFAR ResNet or plain net, or a run"
    )
    p.add_argument("--check", action="store_true", help="compare with autograd and finite differences (exit 1 if off)")
    p.add_argument("--batch", type=int, default=4, help="random inputs in the batch (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and labels (default 0)")
    p.add_argument("--input", type=parse_size, metavar="CxHxW", help="input size (default: the model's)")
    p.set_defaults(func=cmd_backprop)


def cmd_backprop(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)  # the untrained weights, as the batch, from the seed
    if Path(args.model).exists():
        model = load_model(args.model)
        size = args.input or tuple(getattr(model, "input_size", ()))
    else:
        model = create_model(args.model)
        size = args.input or get_model_info(args.model).input_size
    w = walk(model, tuple(size), batch=max(1, args.batch), seed=args.seed, check=args.check)
    shape = "x".join(map(str, size))
    print(f"{args.model}: {args.batch} random {shape} inputs and labels, float64, training mode (no dropout mask)")
    print(f"{'layer':12s} {'what':32s} {'output':14s} {'|dL/dW|, |dL/db|':30s} backward rule")
    for r in w.rows:
        norms = ", ".join(r["grad"]) or "-"
        out = "x".join(map(str, r["shape"]))
        print(f"{r['layer']:12s} {r['what']:32s} {out:14s} {norms:30s} {r['rule']}")
    print(f"{'loss':12s} {'softmax cross-entropy':32s} {w.loss:<14.4f} {'':30s} dZ = (p − y) / N")
    if not args.check:
        return 0
    worst = max(w.autograd, key=w.autograd.get)
    fd = max(w.finite, key=w.finite.get)
    print(
        f"check: autograd {w.autograd[worst]:.1e} at most ({worst}; limit {AUTOGRAD_TOLERANCE:g}), finite "
        f"differences {w.finite[fd]:.1e} at most ({fd}; limit {FINITE_TOLERANCE:g}): {'ok' if w.ok else 'FAILED'}"
    )
    return 0 if w.ok else 1
