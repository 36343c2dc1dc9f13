"""Wall time to 99.0 % MNIST test accuracy: cnnlab's default lenet5_modern recipe against the
common recipe (torchvision's MNIST dataset, DataLoader with batch 64 and PIL transforms, SGD with
momentum), both evaluated after every epoch, in one process, one after the other.

Usage: CNNLAB_DATA=../shared/data python bench/train_speed.py [--max-epochs 10]
"""

import argparse
import gzip
import os
import shutil
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
        for epoch in range(1, max_epochs + 1):
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| pipeline | seconds to 99.0 % | epochs | test top-1 |")
    print("|---|---:|---:|---:|")
    results = {}
    for name, fn in (("cnnlab train lenet5_modern (default recipe)", cnnlab_run),
                     ("torchvision MNIST + DataLoader(batch 64) + SGD 0.01 momentum 0.9", common_recipe_run)):
        seconds, epochs, acc = fn(args.max_epochs)
        results[name] = seconds
        print(f"| {name} | {seconds:.1f} | {epochs} | {100 * acc:.2f} % |")
    a, b = results.values()
    print(f"ratio: {b / a:.1f}x")


if __name__ == "__main__":
    main()
