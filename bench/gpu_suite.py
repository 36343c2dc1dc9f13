"""Every GPU figure of the reproductions in one run, for the GPU time there is: the captured
training step checked against the eager one; the trainer's ResNet-20 step, eager and as one
CUDA graph (`--cuda-graph`), against a bare PyTorch step of the same model and batch (images/s,
model FLOP utilisation); ResNet-50 at 224x224 (synthetic, bf16, channels_last), eager,
captured, and compiled then captured; `cnnlab reproduce resnet20-cifar10` with one seed if its
time, estimated from the measured speed, fits in what is left; and a training-throughput table
of the zoo as far as the time goes. What does not fit says what it needs.

Results go to DIR/results.json and DIR/results.md (date, device, torch version, each figure).

    python bench/gpu_suite.py [--out DIR] [--minutes 9] [--smoke]

--smoke runs the same code on the CPU at toy sizes in under a minute (a test runs it, so it
cannot rot before the next GPU); there the captured steps are replayed by calling them again.
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
from cnnlab.train import graphed, recipe, train
from cnnlab.train.graphed import WARMUP, GraphedStep

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bf16 (SXM), the MFU's denominator
COMPILE_SECONDS = 150  # what torch.compile of ResNet-50 may take, with its timing


class Clock:
    """The suite's time: how much of its budget is left."""

    def __init__(self, minutes: float):
        self.start, self.budget = time.perf_counter(), 60 * minutes

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def utilisation(name: str, images_per_s: float, device: torch.device) -> dict:
    """Model FLOPs per second (forward and backward: 3 x the forward's 2 x MACs) and their share
    of the device's peak."""
    tflops = images_per_s * analyze(name).totals["macs"] * 6 / 1e12
    peak = peak_tflops(device)
    return {"tflops": round(tflops, 2), "mfu": round(tflops / peak, 4) if peak else None}


def bare_step(name: str, batch: int, device: torch.device, steps: int, mode: str = "eager") -> dict:
    """Images/s of a bare training step on synthetic data already on the device: the model,
    fused SGD with momentum, bf16 autocast and channels_last on CUDA; the median of `steps`
    steps. mode: eager; graph (the step captured as the trainer's --cuda-graph does); compiled
    (torch.compile's kernels, then captured)."""
    info = cnnlab.get_model_info(name)
    cuda = device.type == "cuda"
    model = cnnlab.create_model(name).to(device).train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=True)
    x = torch.randn(batch, *info.input_size, device=device)
    x = x.to(memory_format=torch.channels_last) if cuda and x.ndim == 4 else x
    with torch.no_grad():
        first = model(x)
    first = first[0] if isinstance(first, tuple) else first
    y = torch.randint(0, info.num_classes, (batch, *first.shape[2:]), device=device)  # labels, or masks
    net = torch.compile(model) if mode == "compiled" else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda, cache_enabled=mode == "eager")

    def body(indices):
        with autocast:
            out = net(x)
            loss = sum(F.cross_entropy(o, y) for o in (out if isinstance(out, tuple) else (out,)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return out, loss, y

    step = body if mode == "eager" else GraphedStep(body, opt, torch.Generator(device), batch, device)
    indices = torch.zeros(batch, dtype=torch.long, device=device)
    for _ in range(2 if mode == "eager" else WARMUP + 1):  # cuDNN's choices made; the graph captured
        step(indices)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(indices)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    images = batch / statistics.median(times)
    return row(f"bare {mode}", name, batch, images, device)


def row(label: str, name: str, batch: int, images: float, device: torch.device) -> dict:
    return {"step": label, "model": name, "batch": batch, "images_per_s": round(images, 1)} | utilisation(
        name, images, device
    )


def trying(label: str, name: str, batch: int, measure, device: torch.device) -> dict:
    """A measurement that may fail on this machine: its row, or the row says why."""
    try:
        return measure()
    except (RuntimeError, ValueError, TypeError, CnnlabError) as e:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"step": label, "model": name, "batch": batch, "error": str(e).splitlines()[0][:200]}


def trainer_speed(name: str, batch: int, device: torch.device, data_dir, smoke: bool, cuda_graph: bool) -> dict:
    """Images/s of `cnnlab train NAME --dataset cifar10 [--cuda-graph]` at `batch` in its second
    epoch (augmentation, forward, backward, optimiser, as a run does them; the first epoch holds
    cuDNN's choices and the capture)."""
    tiny = dict(train_per_class=8, test_per_class=2) if smoke else {}
    where = {"device": str(device)} if device.type == "cuda" else {}  # --cuda-graph refuses a named CPU
    cfg = recipe(name, "cifar10", batch_size=batch, epochs=2, data_dir=data_dir, cuda_graph=cuda_graph, **where, **tiny)
    images = train(cfg, log=lambda line: None)["history"][-1]["images_per_s"]
    return row("trainer graph" if cuda_graph else "trainer eager", name, batch, images, device)


def graph_check(device: torch.device, data_dir, smoke: bool) -> dict:
    """The captured step against the eager one, as tests/test_gpu.py compares them: ResNet-20 on
    300 CIFAR-10 images for 2 epochs in float32; the largest weight difference and the losses."""
    where = {"device": str(device)} if device.type == "cuda" else {}
    size = (
        dict(train_per_class=8, test_per_class=2, batch_size=16) if smoke else dict(train_per_class=30, batch_size=64)
    )
    common = dict(epochs=2, test_per_class=10, amp=False, data_dir=data_dir) | size
    eager, graph = (
        train(recipe("resnet20", "cifar10", cuda_graph=g, **common, **where), log=lambda line: None)
        for g in (False, True)
    )
    pairs = zip(eager["model"].state_dict().values(), graph["model"].state_dict().values())
    largest = max((a.float() - b.float()).abs().max().item() for a, b in pairs)
    losses = {k: [r["train_loss"] for r in run["history"]] for k, run in (("eager", eager), ("graph", graph))}
    return {"largest_weight_difference": largest, "train_loss": losses, "same_within_1e-3": largest < 1e-3}


def reproduction(device: torch.device, clock: Clock, speed: float, graph: bool, out: Path, data_dir, smoke) -> dict:
    """`cnnlab reproduce resnet20-cifar10 [--cuda-graph]`, one seed, if its estimated time fits."""
    entry = ENTRIES["resnet20-cifar10"]
    needs = entry.recipe["epochs"] * 45_000 / speed * 1.15  # and evaluation after every epoch
    if not smoke and needs > clock.left() - 30:
        return {"name": entry.name, "skipped": f"needs about {needs:.0f} s at {speed:.0f} images/s"}
    quick = dict(max_steps=2, train_per_class=8, test_per_class=2) if smoke else {}
    where = {"device": str(device)} if device.type == "cuda" else {}
    result = reproduce(
        entry.name, 1, out / entry.name, log=lambda line: None, data_dir=data_dir, cuda_graph=graph, **where, **quick
    )
    keep = ("name", "paper", "ours", "unit", "seconds", "changed_from_the_paper_recipe")
    return {k: result[k] for k in keep} | {"cuda_graph": graph}


def zoo(device: torch.device, clock: Clock, smoke: bool) -> list[dict]:
    """A bare eager step of every zoo model at batch 64, as long as the time lasts."""
    names = ("lenet5", "resnet20", "alexnet_cifar") if smoke else tuple(cnnlab.list_models())
    batch, steps = (8, 2) if smoke else (64, 10)
    rows = []
    for name in names:
        if clock.left() < 20 and not smoke:
            rows.append({"step": "bare eager", "model": name, "batch": batch, "error": "no time left"})
            continue
        rows.append(trying("bare eager", name, batch, lambda name=name: bare_step(name, batch, device, steps), device))
    return rows


def _cell(r: dict, key: str) -> str:
    if key == "mfu":
        return f"{100 * r['mfu']:.1f} %" if r.get("mfu") is not None else "-"
    return f"{r[key]:,.0f}" if key == "images_per_s" else str(r[key])


def table(rows: list[dict]) -> list[str]:
    lines = ["| step | model | batch | images/s | TFLOP/s | MFU |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['step']} | {r['model']} | {r['batch']} | {r['error']} | | |")
            continue
        cells = (_cell(r, k) for k in ("step", "model", "batch", "images_per_s", "tflops", "mfu"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(results: dict) -> str:
    lines = [f"# GPU suite, {results['date']}", "", f"{results['device']}, torch {results['torch']}", ""]
    lines += ["Captured step against eager: " + json.dumps(results["graph_check"]), ""]
    lines += table(results["steps"])
    lines += ["", *(f"- {k.replace('_', ' ')}: {v:.2f}" for k, v in results["ratios"].items())]
    lines += ["", "## Reproduction", "", "    " + json.dumps(results["reproduction"]), "", "## Zoo", ""]
    return "\n".join(lines + table(results["zoo"]) + [""])


def rerun(step, stream, generator):
    """The CPU has no graphs: a smoke run's 'replay' calls the step again."""
    return step


def measure(device: torch.device, clock: Clock, out: Path, data_dir, smoke: bool) -> dict:
    batch, big, steps = (8, 1, 2) if smoke else (128, 256, 50)
    check = trying("graph check", "resnet20", 64, lambda: graph_check(device, data_dir, smoke), device)
    steps_rows = [
        trying(
            f"trainer {m}",
            "resnet20",
            batch,
            lambda m=m: trainer_speed("resnet20", batch, device, data_dir, smoke, m == "graph"),
            device,
        )
        for m in ("eager", "graph")
    ]
    steps_rows += [
        trying(f"bare {m}", name, b, lambda m=m, name=name, b=b: bare_step(name, b, device, steps, m), device)
        for name, b in (("resnet20", batch), ("resnet50", big))
        for m in ("eager", "graph")
    ]
    speed = {r["step"] + " " + r["model"]: r.get("images_per_s") for r in steps_rows}
    # the reproduction takes the captured step only where it ran and trained as the eager one
    graph_ok = speed["trainer graph resnet20"] is not None and check.get("same_within_1e-3", False)
    results = {"graph_check": check, "steps": steps_rows, "ratios": ratios(speed)}
    fastest = speed["trainer graph resnet20"] if graph_ok else speed["trainer eager resnet20"]
    results["reproduction"] = reproduction(device, clock, fastest or 1.0, graph_ok, out, data_dir, smoke)
    results["zoo"] = zoo(device, clock, smoke)
    if not smoke and clock.left() > COMPILE_SECONDS:  # minutes of compiling on a CPU: not in the smoke run
        results["steps"].append(
            trying(
                "bare compiled", "resnet50", big, lambda: bare_step("resnet50", big, device, steps, "compiled"), device
            )
        )
    return results


def ratios(speed: dict) -> dict:
    """The speed-ups the issue asks about, where both sides were measured."""
    pairs = {
        "trainer_graph_over_eager": ("trainer graph resnet20", "trainer eager resnet20"),
        "trainer_graph_over_bare_eager": ("trainer graph resnet20", "bare eager resnet20"),
        "trainer_eager_over_bare_eager": ("trainer eager resnet20", "bare eager resnet20"),
        "bare_graph_over_eager_resnet50": ("bare graph resnet50", "bare eager resnet50"),
    }
    return {k: round(speed[a] / speed[b], 3) for k, (a, b) in pairs.items() if speed.get(a) and speed.get(b)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/gpu-suite")
    parser.add_argument("--minutes", type=float, default=9.0, help="the time the whole suite may take")
    parser.add_argument("--smoke", action="store_true", help="the same code on the CPU at toy sizes")
    args = parser.parse_args()
    clock, out = Clock(args.minutes), Path(args.out)
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu":
        graphed.CAPTURE.setdefault("cpu", rerun)
    torch.backends.cudnn.benchmark = True
    results = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "smoke": args.smoke,
    }
    results |= measure(device, clock, out, os.environ.get("CNNLAB_DATA"), args.smoke)
    results["seconds"] = round(time.perf_counter() - clock.start, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    if (
        not all(math.isfinite(v) for v in results["ratios"].values())
        or "trainer_graph_over_eager" not in results["ratios"]
    ):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
