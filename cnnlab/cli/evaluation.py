"""`cnnlab eval`, `predict` and `visualize`: trained runs on their test split, on image files, and
what their layers have learned."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data.segmentation import is_segmentation
from ..errors import CnnlabError
from ..evaluation.plots import write_confusion, write_gallery
from ..evaluation.runs import evaluate_runs, evaluate_segmentation_run, image_files, predict_images, unmirrored
from ..evaluation.tta import TTA
from ..evaluation.visualize import visualize_feature_maps, visualize_filters
from ..runs import read_config
from ..train.config import dataset_name
from .options import checked, positive_int


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate runs on a test split: accuracy, per-class accuracy, confusion")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or .safetensors files; several: ensemble")
    p.add_argument("--dataset", type=checked(dataset_name), help="default: the run's")
    p.add_argument(
        "--tta",
        choices=TTA,
        default="none",
        help="test-time augmentation: mirror images; 4 corner + centre crops and their mirrors "
        "(AlexNet); or GoogLeNet's crops at 4 scales (48 views)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--out", help="where confusion.csv/png go (default: the run directory)")
    p.add_argument(
        "--test-per-class",
        type=positive_int,
        help="the first N test images of each class only (a quick check; default: all)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-5 classes of image files")
    p.add_argument("run", help="a run directory or .safetensors file")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders of them")
    p.add_argument("--top", type=positive_int, default=5)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("visualize", help="PNG grids of the first layer's filters and of a layer's feature maps")
    p.add_argument("run", help="a run directory or .safetensors file")
    p.add_argument("--filters", action="store_true", help="the first convolution's filters")
    p.add_argument("--feature-maps", metavar="IMAGE", help="feature maps for this image file")
    p.add_argument("--layer", help="layer name for --feature-maps (default: the first convolution)")
    p.add_argument("--out", help="folder for filters.png / feature_maps.png (default: the run directory)")
    p.set_defaults(func=cmd_visualize)


def output_folder(args: argparse.Namespace, run: str) -> Path | None:
    """--out, else the run directory (None for a run file)."""
    if args.out is not None and not args.out.strip():
        raise CnnlabError(f"--out {args.out!r} is empty; give a folder name, or leave --out out for the run's")
    return Path(args.out) if args.out else (Path(run) if Path(run).is_dir() else None)


def cmd_eval(args: argparse.Namespace) -> int:
    if is_segmentation(args.dataset or read_config(args.runs[0])["dataset"]):
        if args.test_per_class:
            raise CnnlabError(
                "--test-per-class picks images of a class; a segmentation dataset has every class in every image"
            )
        return eval_segmentation(args)
    if args.tta != "none" and (mirrored := unmirrored(args.runs)):  # every test-time augmentation mirrors
        print(
            f"cnnlab: note: {', '.join(map(str, mirrored))} trained without flipped images; --tta {args.tta} "
            "averages in mirror images, which can hurt where mirroring changes the class (digits, letters)",
            file=sys.stderr,
        )
    result = evaluate_runs(args.runs, args.dataset, args.tta, args.data_dir, args.device, args.test_per_class)
    out = output_folder(args, args.runs[0])
    files = write_confusion(result, out) if out else []
    if out and (gallery := write_gallery(result, out / "misclassified.png")):
        files.append(gallery)
    result.pop("_gallery", None)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    what = "ensemble of " + ", ".join(args.runs) if len(args.runs) > 1 else args.runs[0]
    print(f"{what} on {result['dataset']} test ({result['images']:,} images, tta {result['tta']})")
    print(
        f"loss {result['loss']:.4f}  top-1 {100 * result['top1']:.2f}% (error {100 * result['top1_error']:.2f}%)"
        + (
            f"  top-5 {100 * result['top5']:.2f}% (error {100 * result['top5_error']:.2f}%)"
            if len(result["per_class"]) > 5
            else ""
        )
    )  # of 5 classes or fewer, top-5 is 100 % by definition
    width = max(len(c) for c in result["per_class"])
    for name, acc in result["per_class"].items():
        print(f"  {name.ljust(width)}  {100 * acc:6.2f}%")
    for f in files:
        print(f"wrote {f}")
    return 0


def eval_segmentation(args: argparse.Namespace) -> int:
    if len(args.runs) > 1 or args.tta != "none":
        raise CnnlabError("segmentation runs are evaluated one at a time, without --tta")
    result = evaluate_segmentation_run(
        args.runs[0], args.dataset, args.data_dir, args.device, output_folder(args, args.runs[0])
    )
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.runs[0]} on {result['dataset']} test ({result['images']:,} images)")
    print(
        f"pixel accuracy {100 * result['pixel_accuracy']:.2f}%  mean accuracy {100 * result['mean_accuracy']:.2f}%  "
        f"mean IoU {100 * result['miou']:.2f}%"
    )
    width = max(len(c) for c in result["iou"])
    for name, iou in result["iou"].items():
        print(f"  {name.ljust(width)}  IoU " + (f"{100 * iou:6.2f}%" if iou is not None else "     -"))
    if "picture" in result:
        print(f"wrote {result['picture']}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    images = image_files(args.images)
    for path, top in zip(images, predict_images(args.run, images, args.top)):
        print(f"{path}: " + ", ".join(f"{name} {100 * p:.1f}%" for name, p in top))
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    out = output_folder(args, args.run) or Path(".")
    if not args.filters and not args.feature_maps:
        raise CnnlabError("say what to draw: --filters and/or --feature-maps IMAGE")
    if args.layer and not args.feature_maps:
        raise CnnlabError(
            "--layer picks the layer of --feature-maps (--filters are the first convolution's); give "
            "--feature-maps IMAGE"
        )
    if args.filters:
        print(f"wrote {visualize_filters(args.run, out / 'filters.png')}")
    if args.feature_maps:
        print(f"wrote {visualize_feature_maps(args.run, args.feature_maps, args.layer, out / 'feature_maps.png')}")
    return 0
