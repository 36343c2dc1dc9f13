"""Training steps of a zoo model on the CPU: eager against torch.compile, channels_last against
NCHW, side by side in one process (rounds alternating between the four variants), synthetic data.

Reports the median images/s of the timed rounds and the compile time of each compiled variant.
Usage: python bench/cpu_step.py [--model resnet20] [--batch 128] [--rounds 7] [--steps 5]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import cnnlab


def make_step(name: str, channels_last: bool, compiled: bool, batch: int):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = cnnlab.create_model(name).to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    info = cnnlab.get_model_info(name)
    x = torch.randn(batch, *info.input_size).to(memory_format=fmt)
    y = torch.randint(0, info.num_classes, (batch,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    run = torch.compile(step) if compiled else step
    start = time.perf_counter()
    run()
    run()
    return run, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    args = parser.parse_args()
    variants = {}
    for compiled in (False, True):
        for channels_last in (True, False):
            label = f"{'compiled' if compiled else 'eager'} {'channels_last' if channels_last else 'NCHW'}"
            variants[label], warm = make_step(args.model, channels_last, compiled, args.batch)
            print(f"{label}: ready in {warm:.1f} s (first two steps{', compiling' if compiled else ''})", flush=True)
    rates = {label: [] for label in variants}
    for _ in range(args.rounds):
        for label, run in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                run()
            rates[label].append(args.steps * args.batch / (time.perf_counter() - start))
    base = statistics.median(rates["eager channels_last"])
    print(
        f"{args.model}, batch {args.batch}, {torch.get_num_threads()} threads, median of {args.rounds} rounds "
        f"of {args.steps} steps:"
    )
    for label, values in rates.items():
        median = statistics.median(values)
        print(f"  {label:24s} {median:8.0f} images/s  {median / base:.2f}x")


if __name__ == "__main__":
    main()
