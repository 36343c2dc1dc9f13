"""The lectures' segmentation claims on MNIST scenes, same budget for every network:
skip links (FCN-32s -> 16s -> 8s) and the dilated context module.

Every run uses the default mnist-scenes recipe (10,000 64x64 training scenes, AdamW one-cycle,
batch 32, batch norm in the VGG layers; the FCNs at 1/16 width, the dilated front end at 1/16)
and is scored on the 2,000 test scenes: pixel accuracy, mean IoU, and the mean IoU of the digit
classes alone. The context module follows Yu & Koltun's two stages: the front end is trained
alone first; then, from those weights and for the same further budget, once more alone and once
with the (identity-initialised) context module on top.

Usage: CNNLAB_DATA=../shared/data python bench/segmentation.py [--epochs N] [--stage2 N] [--out runs/segmentation]
"""

import argparse
import statistics
import time
from pathlib import Path

from cnnlab.evaluate import evaluate_segmentation_run
from cnnlab.train import recipe, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--stage2", type=int, default=2, help="epochs of the second stage of the dilated runs")
    parser.add_argument("--out", default="runs/segmentation")
    args = parser.parse_args()
    out = Path(args.out)
    print("| network | parameters | epochs | pixel accuracy | mean IoU | digits' mean IoU | train s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    front = out / "dilated-front-end"
    arms = [(name, name, out / name, {}) for name in ("fcn32s", "fcn16s", "fcn8s")]
    arms += [("dilated front end", "dilated_frontend", front, dict(model_kwargs={"context": False}))]
    arms += [(f"{label}, then {args.stage2} more epochs", "dilated_frontend", out / run,
              dict(model_kwargs={"context": context}, weights=str(front), epochs=args.stage2))
             for label, run, context in (("dilated front end alone", "dilated-alone", False),
                                         ("dilated front end + context module", "dilated-context", True))]
    for label, name, run, settings in arms:
        cfg = recipe(name, "mnist-scenes", out=str(run), **{"epochs": args.epochs, **settings})
        start = time.perf_counter()
        result = train(cfg, log=lambda line: None)
        seconds = time.perf_counter() - start
        params = sum(p.numel() for p in result["model"].parameters())
        s = evaluate_segmentation_run(run, out=run)
        digits = statistics.mean(v for k, v in s["iou"].items() if k != "background" and v is not None)
        epochs = f"{cfg.epochs}" if not settings.get("weights") else f"+{cfg.epochs}"
        print(f"| {label} | {params:,} | {epochs} | {100 * s['pixel_accuracy']:.2f} % | {100 * s['miou']:.2f} % | "
              f"{100 * digits:.2f} % | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
