"""The NumPy engine against the PyTorch engine: `cnnlab train lenet5_modern --dataset mnist` with
the default recipe (AdamW one-cycle, batch 128, 2 epochs), once with each `--engine`, alternating
for --rounds rounds on the same machine in the same run. The table gives each run's images/s of
training (the trainer's own count, evaluation left out), its seconds, its test accuracy after
the last epoch, the medians and the ratio of the medians.

Usage: CNNLAB_DATA=../shared/data python bench/numpy_engine.py [--rounds 3] [--epochs 2]
"""

import argparse
import statistics

from cnnlab.train import recipe, train


def run(engine: str, epochs: int) -> tuple[float, float, float]:
    history = train(recipe("lenet5_modern", "mnist", engine=engine, epochs=epochs), log=lambda line: None)["history"]
    speed = statistics.median(row["images_per_s"] for row in history)
    return speed, history[-1]["time"], history[-1]["test_top1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    rows = {"torch": [], "numpy": []}
    print("| round | engine | images/s | seconds | test top-1 |\n|---|---|---|---|---|")
    for k in range(args.rounds):
        for engine in rows:
            speed, seconds, top1 = run(engine, args.epochs)
            rows[engine].append((speed, seconds, top1))
            print(f"| {k + 1} | {engine} | {speed:,.0f} | {seconds:.1f} | {100 * top1:.2f} % |", flush=True)
    med = {e: statistics.median(r[0] for r in rows[e]) for e in rows}
    for e in rows:
        print(f"| median | {e} | {med[e]:,.0f} | {statistics.median(r[1] for r in rows[e]):.1f} | |")
    print(f"\nPyTorch engine / NumPy engine, images/s: {med['torch'] / med['numpy']:.1f}x")


if __name__ == "__main__":
    main()
