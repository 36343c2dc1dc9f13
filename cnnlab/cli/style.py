"""`cnnlab stylize`: neural style transfer (Gatys et al.)."""

from __future__ import annotations

import argparse

import torch

from ..device import pick_device
from ..errors import CnnlabError
from ..files import check_output
from ..style import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    default_preprocess,
    default_style_weight,
    read_image,
    save_image,
    stylize,
    vgg_features,
)
from .options import non_negative_float, positive_float, positive_int


def register(sub) -> None:
    p = sub.add_parser("stylize", help="neural style transfer (Gatys et al.): CONTENT painted in the style of STYLE")
    p.add_argument("content", help="the content image")
    p.add_argument("style", help="the style image")
    p.add_argument("-o", "--output", required=True, help="the picture to write (.png or .jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace the picture if it exists")
    p.add_argument("--size", type=positive_int, help="longer side in pixels (default 512 on CUDA, 256 on the CPU)")
    p.add_argument("--content-weight", type=non_negative_float, default=1.0, help="alpha")
    p.add_argument(
        "--style-weight",
        type=non_negative_float,
        help="beta (default 1e3 for trained weights, the paper's alpha/beta = 1e-3; 1e10 for random)",
    )
    p.add_argument("--tv-weight", type=non_negative_float, default=0.0, help="total-variation smoothing")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--steps", type=positive_int, default=150, help="L-BFGS iterations or Adam steps")
    p.add_argument("--lr", type=positive_float, help="Adam's step on pixel values (0-1; default 0.02)")
    p.add_argument("--init", choices=("content", "noise", "style"), default="content")
    p.add_argument("--style-layers", help="comma-separated (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    p.add_argument("--content-layer", help="default relu4_2")
    p.add_argument("--features", default="vgg19", help="the VGG whose feature maps are used")
    p.add_argument(
        "--weights",
        default="auto",
        help="auto (ImageNet if obtainable, else random), imagenet, random, a weights file or a run",
    )
    p.add_argument(
        "--preprocess",
        choices=("auto", "torchvision", "caffe"),
        default="auto",
        help="the input the weights expect: torchvision (RGB, standardised) or caffe (BGR 0-255 "
        "minus the mean pixel); auto: caffe for files with caffe in their name",
    )
    p.add_argument(
        "--pool",
        choices=("max", "avg"),
        default="avg",
        help="the paper's average pooling (default) or the network's max pooling",
    )
    p.add_argument("--snapshot-every", type=positive_int, default=0, help="also write OUT-<step> every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_stylize)


def cmd_stylize(args: argparse.Namespace) -> int:
    if args.lr is not None and args.optimizer != "adam":
        raise CnnlabError("--lr is Adam's step; L-BFGS (the default --optimizer) finds its own: give --optimizer adam")
    out = check_output(args.output, args.overwrite)
    device = pick_device(args.device)
    size = args.size or (512 if device.type == "cuda" else 256)
    content, style = read_image(args.content, size).to(device), read_image(args.style, size).to(device)
    features, used = vgg_features(args.features, args.weights, args.seed, log=print)
    preprocess = default_preprocess(used) if args.preprocess == "auto" else args.preprocess
    style_weight = args.style_weight if args.style_weight is not None else default_style_weight(used)
    print(
        f"stylize: {args.features} ({used} weights, {preprocess} input), {tuple(content.shape[2:])} px, "
        f"{args.optimizer} {args.steps} steps, alpha {args.content_weight}, beta {style_weight}"
    )
    torch.manual_seed(args.seed)
    snapshot = (
        (lambda step, x: save_image(x, out.with_name(f"{out.stem}-{step:04d}{out.suffix}")))
        if args.snapshot_every
        else None
    )
    image, history = stylize(
        content,
        style,
        features,
        preprocess,
        args.content_weight,
        style_weight,
        args.tv_weight,
        args.style_layers.split(",") if args.style_layers else STYLE_LAYERS,
        args.content_layer or CONTENT_LAYER,
        args.optimizer,
        args.steps,
        args.lr or 0.02,
        args.init,
        args.pool,
        args.seed,
        snapshot,
        args.snapshot_every,
    )
    save_image(image, out)
    first, last = history[0], history[-1]
    print(
        f"wrote {out}: loss {first['loss']:.4g} -> {last['loss']:.4g} (style {first['style']:.3g} -> "
        f"{last['style']:.3g}, content {last['content']:.3g}) in {last['time']:.0f}s"
    )
    return 0
