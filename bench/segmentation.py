"""The lectures' segmentation claims on MNIST scenes, same budget for every network:
skip links (FCN-32s -> 16s -> 8s) and the dilated front end with and without the context module.

Every run uses the default mnist-scenes recipe (10,000 64x64 training scenes, AdamW one-cycle,
batch 32; the FCNs at 1/8 width, the dilated front end at 1/16) and is scored on the 2,000 test
scenes: pixel accuracy, mean IoU, and the mean IoU of the digit classes alone.

Usage: CNNLAB_DATA=../shared/data python bench/segmentation.py [--epochs N] [--out runs/segmentation]
"""

import argparse
import statistics
import time
from pathlib import Path

from cnnlab.evaluate import evaluate_segmentation_run
from cnnlab.train import recipe, train

ARMS = (("fcn32s", {}), ("fcn16s", {}), ("fcn8s", {}),
        ("dilated_frontend", {"context": False}), ("dilated_frontend", {"context": True}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--out", default="runs/segmentation")
    args = parser.parse_args()
    print("| network | parameters | epochs | pixel accuracy | mean IoU | digits' mean IoU | train s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, kwargs in ARMS:
        label = name + ("" if not kwargs else " (context)" if kwargs["context"] else " (no context)")
        run = Path(args.out) / label.replace(" ", "-").replace("(", "").replace(")", "")
        cfg = recipe(name, "mnist-scenes", out=str(run), epochs=args.epochs, model_kwargs=kwargs)
        start = time.perf_counter()
        result = train(cfg, log=lambda line: None)
        seconds = time.perf_counter() - start
        params = sum(p.numel() for p in result["model"].parameters())
        s = evaluate_segmentation_run(run, out=run)
        digits = statistics.mean(v for k, v in s["iou"].items() if k != "background" and v is not None)
        print(f"| {label} | {params:,} | {cfg.epochs} | {100 * s['pixel_accuracy']:.2f} % | {100 * s['miou']:.2f} % | "
              f"{100 * digits:.2f} % | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
