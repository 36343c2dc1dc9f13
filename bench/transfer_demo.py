"""The lectures' transfer-learning comparison on real data, small enough for a CPU.

Two transfers, each with 50 and 500 labelled training images per target class:
- high similarity: a network trained on five CIFAR-10 classes (airplane, automobile, bird, cat,
  deer) transferred to the other five (dog, frog, horse, ship, truck);
- low similarity: a network trained on MNIST transferred to CIFAR-10 (all ten classes).
Strategies: penultimate features + linear SVM; feature-extractor (a new linear head trained);
fine-tune-top; fine-tune-all; from-scratch (30 epochs of AdamW one-cycle, batch 64, crops and
flips). Test accuracy on the full test split of the target classes, and wall time.

The network is the modern LeNet-5 on grey-scale images (CIFAR-10 turned to luma, and resized to
28 px for the MNIST network), so that everything runs in minutes on two CPU cores.

Usage: CNNLAB_DATA=../shared/data python bench/transfer_demo.py [--out runs/transfer]
"""

import argparse
import time
from pathlib import Path

from cnnlab.train import recipe, train
from cnnlab.transfer import features, linear_classifier

SOURCE5 = ("airplane", "automobile", "bird", "cat", "deer")
TARGET5 = ("dog", "frog", "horse", "ship", "truck")
STRATEGIES = ("feature-extractor", "fine-tune-top", "fine-tune-all", "from-scratch")


def quiet(line):
    pass


def target_run(out: Path, weights: str, classes, per_class: int, strategy: str, size: int) -> tuple[float, float]:
    cfg = recipe(
        "lenet5_modern",
        "cifar10",
        out=str(out),
        overwrite=True,
        weights=weights,
        strategy=strategy,
        classes=classes,
        train_per_class=per_class,
        batch_size=64,
        optimizer="adamw",
        lr=3e-3,
        weight_decay=0.05,
        schedule="onecycle",
        augment=("crop", "flip"),
        epochs=30,
        model_kwargs={"input_size": size},
    )
    start = time.perf_counter()
    result = train(cfg, log=quiet)
    return result["test"]["top1"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/transfer")
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    src5 = out / "source-cifar5"
    r = train(
        recipe(
            "lenet5_modern",
            "cifar10",
            out=str(src5),
            overwrite=True,
            classes=SOURCE5,
            epochs=15,
            batch_size=128,
            optimizer="adamw",
            lr=4e-3,
            weight_decay=0.05,
            schedule="onecycle",
            augment=("crop", "flip"),
            model_kwargs={"input_size": 32},
        ),
        log=quiet,
    )
    print(
        f"source: lenet5_modern (32 px, grey) on CIFAR-10 {', '.join(SOURCE5)}: "
        f"{100 * r['test']['top1']:.2f}% in {time.perf_counter() - start:.0f}s"
    )
    start = time.perf_counter()
    srcm = out / "source-mnist"
    r = train(recipe("lenet5_modern", "mnist", out=str(srcm), overwrite=True), log=quiet)
    print(f"source: lenet5_modern on MNIST: {100 * r['test']['top1']:.2f}% in {time.perf_counter() - start:.0f}s")
    print("| transfer | labelled / class | method | test top-1 | seconds |")
    print("|---|---:|---|---:|---:|")
    for label, weights, classes, size in (
        ("CIFAR-5 -> other CIFAR-5 (high similarity)", src5, TARGET5, 32),
        ("MNIST -> CIFAR-10 (low similarity)", srcm, (), 28),
    ):
        for per_class in (50, 500):
            t = time.perf_counter()
            feats = features("lenet5_modern", str(weights), "cifar10", classes=classes, train_per_class=per_class)
            svm = linear_classifier(feats, "svm")
            print(
                f"| {label} | {per_class} | features + linear SVM | {100 * svm['test_accuracy']:.2f} % | "
                f"{time.perf_counter() - t:.0f} |",
                flush=True,
            )
            for strategy in STRATEGIES:
                acc, seconds = target_run(
                    out / f"{weights.name}-{per_class}-{strategy}", str(weights), classes, per_class, strategy, size
                )
                print(f"| {label} | {per_class} | {strategy} | {100 * acc:.2f} % | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
