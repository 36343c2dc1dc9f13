"""The lectures' segmentation claims on MNIST scenes: skip links (FCN-32s -> 16s -> 8s, same
budget) and the dilated context module.

Every run uses the default mnist-scenes recipe (10,000 64x64 training scenes, AdamW one-cycle,
batch 32, batch norm in the VGG layers; the FCNs at 1/16 width, the dilated front end at 1/8)
and is scored on the 2,000 test scenes: pixel accuracy, mean IoU, and the mean IoU of the digit
classes alone. The context module follows Yu & Koltun's protocol: the front end is trained
first; then, with it frozen, the identity-initialised context module is trained on its class
scores. The control gets the same frozen front end and the same budget with its score layer and
upsampling retrained instead, so the difference is the context module's.

Usage: CNNLAB_DATA=../shared/data python bench/segmentation.py [--networks fcn,dilated] [--epochs N]
       [--stage2 N] [--out runs/segmentation]
"""

import argparse
import statistics
import time
from pathlib import Path

from cnnlab.evaluation.runs import evaluate_segmentation_run
from cnnlab.train import recipe, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--networks", default="fcn,dilated", help="which comparisons: fcn, dilated or both")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--stage2", type=int, default=4, help="epochs of the second stage of the dilated runs")
    parser.add_argument("--out", default="runs/segmentation")
    args = parser.parse_args()
    out, networks = Path(args.out), args.networks.split(",")
    print("| network | trained | parameters | epochs | pixel accuracy | mean IoU | digits' mean IoU | train s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    arms = []
    if "fcn" in networks:
        arms += [(name, "all", name, out / name, {}) for name in ("fcn32s", "fcn16s", "fcn8s")]
    if "dilated" in networks:
        front = out / "dilated-front-end"
        arms += [("dilated front end", "all", "dilated_frontend", front, dict(model_kwargs={"context": False}))]
        arms += [
            (
                label,
                trained,
                "dilated_frontend",
                out / run,
                dict(model_kwargs={"context": context}, weights=str(front), freeze_until=until, epochs=args.stage2),
            )
            for label, trained, run, context, until in (
                ("front end + context module", "context module, upsampling", "dilated-context", True, "score"),
                ("front end (control)", "score layer, upsampling", "dilated-top", False, "fc7"),
            )
        ]
    for label, trained, name, run, settings in arms:
        cfg = recipe(name, "mnist-scenes", out=str(run), overwrite=True, **{"epochs": args.epochs, **settings})
        start = time.perf_counter()
        result = train(cfg, log=lambda line: None)
        seconds = time.perf_counter() - start
        params = sum(p.numel() for p in result["model"].parameters())
        s = evaluate_segmentation_run(run, out=run)
        digits = statistics.mean(v for k, v in s["iou"].items() if k != "background" and v is not None)
        epochs = f"{cfg.epochs}" if not settings.get("weights") else f"+{cfg.epochs}"
        print(
            f"| {label} | {trained} | {params:,} | {epochs} | {100 * s['pixel_accuracy']:.2f} % | "
            f"{100 * s['miou']:.2f} % | {100 * digits:.2f} % | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
