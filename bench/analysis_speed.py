"""Time cnnlab.analyze against torchinfo, ptflops and fvcore on the same models, side by side
(round-robin, median of repeats), and print what each one counts.

Also: a zoo model analysed by its name against the same model built on the CPU and analysed
as an instance (`--by-name`).

Usage: pip install -e '.[bench]'; python bench/analysis_speed.py [--repeats 7] [--by-name]
"""

import argparse
import contextlib
import io
import statistics
import time
import warnings

import torch
import torchvision

import cnnlab
from cnnlab.analysis import analyze


def run_cnnlab(model, size):
    t = analyze(model, size).totals
    return t["params"], t["macs"]


def run_torchinfo(model, size):
    from torchinfo import summary

    s = summary(model, input_size=(1, *size), verbose=0)
    return s.total_params, s.total_mult_adds


def run_ptflops(model, size):
    from ptflops import get_model_complexity_info

    with contextlib.redirect_stdout(io.StringIO()):
        macs, params = get_model_complexity_info(
            model, size, as_strings=False, print_per_layer_stat=False, backend="pytorch"
        )
    return params, macs


def run_fvcore(model, size):
    from fvcore.nn import FlopCountAnalysis

    fca = FlopCountAnalysis(model, torch.zeros(1, *size))
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return sum(p.numel() for p in model.parameters()), fca.total()


TOOLS = {"cnnlab": run_cnnlab, "torchinfo": run_torchinfo, "ptflops": run_ptflops, "fvcore": run_fvcore}


def by_name(repeats: int) -> None:
    """analyze("resnet152") against analyze(model) for the same network, medians side by side; and
    what building the model costs: on the meta device once per process (by name), on the CPU (an
    instance)."""
    from cnnlab.registry import meta_model

    analyze("lenet5")  # PyTorch's meta kernels load on first use: not part of either
    print("| model | analysed | median s | x instance | built in s (once) |")
    print("|---|---|---:|---:|---:|")
    for name in ("vgg16", "resnet152"):
        start = time.perf_counter()
        model = cnnlab.create_model(name).eval()
        built = {"instance": time.perf_counter() - start}
        start = time.perf_counter()
        meta_model(name, num_classes=1000)  # as the first analyze(name) builds it (num_classes: not the cached one)
        built["by name"] = time.perf_counter() - start
        times = {"by name": [], "instance": []}
        for _ in range(repeats + 1):  # the first round warms up both
            for how, target in (("by name", name), ("instance", model)):
                start = time.perf_counter()
                analyze(target)
                times[how].append(time.perf_counter() - start)
        base = statistics.median(times["instance"][1:])
        for how in times:
            med = statistics.median(times[how][1:])
            print(f"| {name} | {how} | {med:.3f} | {med / base:.2f} | {built[how]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--by-name", action="store_true", help="by name against an instance, cnnlab only")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    if args.by_name:
        by_name(args.repeats)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} (round-robin)")
    print("| model | tool | median s | x cnnlab | params | MACs reported |")
    print("|---|---|---:|---:|---:|---:|")
    for name in ("vgg16", "resnet152"):
        model = torchvision.models.get_model(name).eval()
        size = (3, 224, 224)
        times = {k: [] for k in TOOLS}
        counts = {}
        for k, fn in TOOLS.items():  # warm-up
            counts[k] = fn(model, size)
        for _ in range(args.repeats):
            for k, fn in TOOLS.items():
                t = time.perf_counter()
                fn(model, size)
                times[k].append(time.perf_counter() - t)
        base = statistics.median(times["cnnlab"])
        for k in TOOLS:
            med = statistics.median(times[k])
            params, macs = counts[k]
            print(f"| {name} | {k} | {med:.3f} | {med / base:.1f} | {int(params):,} | {int(macs):,} |")


if __name__ == "__main__":
    main()
