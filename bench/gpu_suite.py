"""Every GPU figure of the reproductions in one run, for the GPU time there is: the trainer's
ResNet-20 step against a bare PyTorch step of the same model and batch (images/s, model FLOP
utilisation), ResNet-50 at 224x224 (synthetic, bf16, channels_last), a training-throughput table
of the zoo, and `cnnlab reproduce resnet20-cifar10` with one seed if the time left allows it
(estimated from the trainer's measured speed; otherwise the result says what it needs).

Results go to DIR/results.json and DIR/results.md (date, device, torch version, each figure).

    python bench/gpu_suite.py [--out DIR] [--minutes 9] [--smoke]

--smoke runs the same code on the CPU at toy sizes in under a minute (a test runs it, so it
cannot rot before the next GPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.analysis import analyze
from cnnlab.errors import CnnlabError
from cnnlab.reproduce import ENTRIES, reproduce
from cnnlab.train import recipe, train

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bf16 (SXM), the MFU's denominator


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def bare_step(name: str, batch: int, device: torch.device, steps: int) -> dict:
    """Images/s of a bare training step on synthetic data already on the device: the model,
    SGD with momentum, bf16 autocast and channels_last on CUDA; the median of `steps` steps."""
    info = cnnlab.get_model_info(name)
    cuda = device.type == "cuda"
    model = cnnlab.create_model(name).to(device).train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, *info.input_size, device=device)
    x = x.to(memory_format=torch.channels_last) if cuda and x.ndim == 4 else x
    with torch.no_grad():
        first = model(x)
    first = first[0] if isinstance(first, tuple) else first
    y = torch.randint(0, info.num_classes, (batch, *first.shape[2:]), device=device)  # labels, or masks

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            out = model(x)
            loss = sum(F.cross_entropy(o, y) for o in (out if isinstance(out, tuple) else (out,)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    images = batch / statistics.median(times)
    return {"model": name, "batch": batch, "images_per_s": round(images, 1), **utilisation(name, images, device)}


def zoo_row(name: str, batch: int, device: torch.device, steps: int) -> dict:
    """A model's row of the zoo table; a model that cannot run at that batch says why."""
    try:
        return bare_step(name, batch, device, steps)
    except (RuntimeError, ValueError, TypeError, CnnlabError) as e:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"model": name, "batch": batch, "error": str(e).splitlines()[0][:200]}


def utilisation(name: str, images_per_s: float, device: torch.device) -> dict:
    """Model FLOPs per second (forward and backward: 3 x the forward's 2 x MACs) and their share
    of the device's peak."""
    tflops = images_per_s * analyze(name).totals["macs"] * 6 / 1e12
    peak = peak_tflops(device)
    return {"tflops": round(tflops, 2), "mfu": round(tflops / peak, 4) if peak else None}


def trainer_speed(name: str, batch: int, device: torch.device, steps: int, data_dir: str | None, smoke: bool) -> dict:
    """Images/s of `cnnlab train NAME --dataset cifar10` at `batch`, over its first `steps` steps
    (augmentation, forward, backward, optimiser, as a run does them)."""
    tiny = dict(train_per_class=8, test_per_class=2) if smoke else {}
    cfg = recipe(name, "cifar10", batch_size=batch, device=str(device), max_steps=steps, data_dir=data_dir, **tiny)
    history = train(cfg, log=lambda line: None)["history"]
    images = history[-1]["images_per_s"]
    return {"model": name, "batch": batch, "images_per_s": round(images, 1), **utilisation(name, images, device)}


def reproduction(device: torch.device, seconds_left: float, speed: float, out: Path, data_dir, smoke: bool) -> dict:
    """`cnnlab reproduce resnet20-cifar10`, one seed, if its estimated time fits in what is left."""
    entry = ENTRIES["resnet20-cifar10"]
    needs = entry.recipe["epochs"] * 45_000 / speed * 1.1  # and evaluation after every epoch
    if not smoke and needs > seconds_left:
        return {
            "name": entry.name,
            "skipped": f"needs about {needs:.0f} s at {speed:.0f} images/s; {seconds_left:.0f} s left",
        }
    quick = dict(max_steps=2, train_per_class=8, test_per_class=2) if smoke else {}
    result = reproduce(
        entry.name, 1, out / entry.name, log=lambda line: None, device=str(device), data_dir=data_dir, **quick
    )
    return {k: result[k] for k in ("name", "paper", "ours", "unit", "seconds", "changed_from_the_paper_recipe")}


def _mfu(row: dict) -> str:
    return f"{100 * row['mfu']:.1f} %" if row["mfu"] is not None else "-"


def markdown(results: dict) -> str:
    lines = [f"# GPU suite, {results['date']}", "", f"{results['device']}, torch {results['torch']}", ""]
    lines += ["| step | model | batch | images/s | TFLOP/s | MFU |", "|---|---|---|---|---|---|"]
    for label in ("trainer", "bare", "resnet50"):
        r = results[label]
        lines.append(
            f"| {label} | {r['model']} | {r['batch']} | {r['images_per_s']:,.0f} | {r['tflops']} | {_mfu(r)} |"
        )
    lines += ["", f"trainer / bare step: {results['trainer_over_bare']:.2f}", "", "## Zoo", ""]
    lines += ["| model | batch | images/s | MFU |", "|---|---|---|---|"]
    for r in results["zoo"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['batch']} | {r['error']} | |")
            continue
        lines.append(f"| {r['model']} | {r['batch']} | {r['images_per_s']:,.0f} | {_mfu(r)} |")
    lines += ["", "## Reproduction", "", "    " + json.dumps(results["reproduction"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/gpu-suite")
    parser.add_argument("--minutes", type=float, default=9.0, help="the time the whole suite may take")
    parser.add_argument("--smoke", action="store_true", help="the same code on the CPU at toy sizes")
    args = parser.parse_args()
    start, out = time.perf_counter(), Path(args.out)
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    torch.backends.cudnn.benchmark = True
    data_dir = os.environ.get("CNNLAB_DATA")
    steps = 3 if args.smoke else 50
    batch, big = (8, 2) if args.smoke else (128, 256)
    results = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "smoke": args.smoke,
    }
    results["trainer"] = trainer_speed("resnet20", batch, device, 20 if args.smoke else 200, data_dir, args.smoke)
    results["bare"] = bare_step("resnet20", batch, device, steps)
    results["trainer_over_bare"] = results["trainer"]["images_per_s"] / results["bare"]["images_per_s"]
    results["resnet50"] = bare_step("resnet50", big, device, steps)
    zoo = ("lenet5", "resnet20", "alexnet_cifar") if args.smoke else tuple(cnnlab.list_models())
    results["zoo"] = [zoo_row(name, batch if args.smoke else 64, device, 2 if args.smoke else 10) for name in zoo]
    left = 60 * args.minutes - (time.perf_counter() - start)
    speed = results["trainer"]["images_per_s"]
    results["reproduction"] = reproduction(device, left, speed, out, data_dir, args.smoke)
    results["seconds"] = round(time.perf_counter() - start, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    if not math.isfinite(results["trainer_over_bare"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
