"""Training throughput of a zoo model on synthetic data on one GPU (bf16 autocast,
channels_last, SGD with momentum), with model FLOP utilisation from cnnlab's own MAC count.

Usage: python bench/gpu_throughput.py [--model resnet50] [--batch 256] [--peak-tflops 989]
(989 TFLOP/s: dense bf16 peak of an H100 SXM.)
"""

import argparse
import time

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.analysis import analyze


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    info = cnnlab.get_model_info(args.model)
    macs = analyze(args.model).totals["macs"]  # per image, forward
    model = cnnlab.create_model(args.model).cuda().to(memory_format=torch.channels_last).train()
    step_model = torch.compile(model) if args.compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(args.batch, *info.input_size, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, info.num_classes, (args.batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = step_model(x)
            outs = list(out) if isinstance(out, tuple) else [out]
            loss = sum(F.cross_entropy(o, y) for o in outs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    median = sorted(times)[len(times) // 2]
    images = args.batch / median
    tflops = images * macs * 2 * 3 / 1e12  # forward + backward = 3 x forward
    print(
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.model}, batch {args.batch}, "
        f"bf16 autocast, channels_last{', torch.compile' if args.compile else ''}"
    )
    print(
        f"median step {1000 * median:.1f} ms, {images:,.0f} images/s, {tflops:.0f} TFLOP/s model FLOPs, "
        f"MFU {100 * tflops / args.peak_tflops:.1f} % of {args.peak_tflops:.0f}"
    )


if __name__ == "__main__":
    main()
