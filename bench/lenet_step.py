"""LeNet-5 (modern) training steps on MNIST: memory format x optimiser implementation.

The trainer's batch source and recipe (AdamW, label smoothing); four variants trained side by side,
rounds alternating between them; median images/s of the timed rounds.

Usage: CNNLAB_DATA=../shared/data python bench/lenet_step.py [--rounds 9] [--steps 20]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.data.loaders import DeviceData
from cnnlab.train import recipe
from cnnlab.train.batches import epoch_batches, epoch_order


def variant(data, cfg, channels_last: bool, fused: bool):
    torch.manual_seed(0)
    model = cnnlab.create_model("lenet5_modern")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        **({"fused": True} if fused else {"foreach": True}),
    )
    gen = torch.Generator().manual_seed(0)
    batches = epoch_batches(data, cfg, gen, 1, epoch_order(data, cfg, gen, 1))

    def run(steps: int) -> None:
        for _ in range(steps):
            x, y = next(batches)
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    run(5)
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cfg = recipe("lenet5_modern", "mnist")
    data = DeviceData(load_dataset("mnist", train=True), (1, 28, 28), (0.1307,), (0.3081,), torch.device("cpu"))
    sides = {(cl, fused): variant(data, cfg, cl, fused) for cl in (False, True) for fused in (False, True)}
    rates = {k: [] for k in sides}
    for _ in range(args.rounds):
        for key, run in sides.items():
            t = time.perf_counter()
            run(args.steps)
            rates[key].append(args.steps * cfg.batch_size / (time.perf_counter() - t))
    base = statistics.median(rates[(False, False)])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {cfg.batch_size}")
    print("| memory format | AdamW | images/s | x NCHW + foreach |")
    print("|---|---|---:|---:|")
    for (cl, fused), v in rates.items():
        print(
            f"| {'channels_last' if cl else 'NCHW'} | {'fused' if fused else 'foreach'} | "
            f"{statistics.median(v):,.0f} | {statistics.median(v) / base:.2f} |"
        )


if __name__ == "__main__":
    main()
