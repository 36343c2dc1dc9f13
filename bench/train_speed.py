"""Wall time to 99.0 % MNIST test accuracy: cnnlab's default lenet5_modern recipe against the
common recipe (torchvision's MNIST dataset, DataLoader with batch 64 and PIL transforms, SGD with
momentum), both evaluated after every epoch. Each run is a fresh process (nothing cached or
warmed up from the other); the two alternate for --rounds rounds, and the table gives each run,
the medians and the ratio of the medians.

Usage: CNNLAB_DATA=../shared/data python bench/train_speed.py [--max-epochs 10] [--rounds 3]
"""

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.data import data_root
from cnnlab.train import recipe, train

TARGET = 0.990


def cnnlab_run(max_epochs: int) -> tuple[float, int, float]:
    cfg = recipe("lenet5_modern", "mnist")
    start = time.perf_counter()
    result = train(cfg, log=lambda line: None)
    for row in result["history"]:
        if row["test_top1"] >= TARGET:
            return row["time"], row["epoch"], row["test_top1"]
    return time.perf_counter() - start, cfg.epochs, result["test"]["top1"]


def common_recipe_run(max_epochs: int) -> tuple[float, int, float]:
    from torchvision import datasets, transforms

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for f in (data_root() / "mnist").glob("*-ubyte.gz"):  # torchvision reads the uncompressed files
            with gzip.open(f) as src, open(raw / f.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        train_set = datasets.MNIST(tmp, train=True, transform=tf, download=False)
        test_set = datasets.MNIST(tmp, train=False, transform=tf, download=False)
        loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True, num_workers=2)
        test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, num_workers=2)
        torch.manual_seed(0)
        model = cnnlab.create_model("lenet5_modern")
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        start = time.perf_counter()
        for epoch in range(1, max_epochs + 1):  # noqa: B007  (the epoch that reached the target is returned)
            model.train()
            for x, y in loader:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                correct = sum((model(x).argmax(1) == y).sum().item() for x, y in test_loader)
            acc = correct / len(test_set)
            if acc >= TARGET:
                break
        return time.perf_counter() - start, epoch, acc


PIPELINES = {
    "cnnlab": ("cnnlab train lenet5_modern (default recipe)", cnnlab_run),
    "common": ("torchvision MNIST + DataLoader(batch 64) + SGD 0.01 momentum 0.9", common_recipe_run),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", choices=sorted(PIPELINES), help=argparse.SUPPRESS)  # a single run, as JSON
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.one:
        seconds, epochs, acc = PIPELINES[args.one][1](args.max_epochs)
        print(json.dumps({"seconds": seconds, "epochs": epochs, "top1": acc}))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds")
    print("| pipeline | round | seconds to 99.0 % | epochs | test top-1 |")
    print("|---|---:|---:|---:|---:|")
    seconds = {key: [] for key in PIPELINES}
    for r in range(1, args.rounds + 1):
        for key, (name, _) in PIPELINES.items():
            out = subprocess.run(
                [sys.executable, __file__, "--one", key, "--max-epochs", str(args.max_epochs)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            run = json.loads(out.strip().splitlines()[-1])
            seconds[key].append(run["seconds"])
            print(f"| {name} | {r} | {run['seconds']:.1f} | {run['epochs']} | {100 * run['top1']:.2f} % |", flush=True)
    mine, common = (statistics.median(seconds[k]) for k in PIPELINES)
    print(f"medians: cnnlab {mine:.1f} s, common recipe {common:.1f} s; ratio {common / mine:.1f}x")


if __name__ == "__main__":
    main()
