"""Does a change of code keep cnnlab's behaviour? Runs the same short, seeded CPU jobs with two
revisions of the package, side by side on this machine, and compares what they leave behind:
every tensor of every weights file bit for bit, metrics and configurations value for value (times
and speeds left out), and the text of `summary`, `eval --format json`, `predict`, `export`,
`features` and an experiment's report.

    python bench/same_behaviour.py REV_A REV_B [--work DIR] [--keep]

A revision is anything `git archive` takes (a commit, a branch, HEAD~3) or "." for the working
tree as it is. The jobs together touch every part of training: LeNet-5 and its modern variant,
an MLP with every regulariser, a CIFAR ResNet with every augmentation, ZCA whitening, an FCN on
MNIST scenes, an image folder, a CSV table, a run stopped by SIGTERM mid-epoch and resumed, a
fine-tuned run, and the arms of an experiment. Exit code 0 when everything is the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CNNLAB_DATA", ROOT.parent / "shared" / "data"))

# Values that depend on the clock or the machine, not on what was computed
VOLATILE = {"time", "images_per_s", "seconds", "git_hash", "cnnlab_version"}

# One training job run in-process that SIGTERMs itself right after its 7th optimiser step, so it
# stops mid-epoch at the same place every time (the signal is handled at the next step's check)
INTERRUPT = """
import os, signal, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
from cnnlab.cli import main
count = [0]
def hook(optimizer, args, kwargs):
    count[0] += 1
    if count[0] == 7:
        os.kill(os.getpid(), signal.SIGTERM)
register_optimizer_step_post_hook(hook)
sys.exit(main(sys.argv[1:]))
"""

EXPERIMENT = """
from cnnlab.experiments import run_experiment
r = run_experiment("init", out="exp-init", log=print, epochs=1, train_per_class=30)
print(r["verdict"] if isinstance(r, dict) else r.verdict)
"""

T = ["train"]
JOBS: list[tuple[str, list[str] | str, list[str]]] = [
    # (name, command line or Python code, extra argv for Python code)
    ("lenet5", T + ["lenet5", "--dataset", "mnist", "--max-steps", "40", "--out", "r/lenet5"], []),
    (
        "modern",
        T
        + [
            "lenet5_modern",
            "--dataset",
            "mnist",
            "--epochs",
            "2",
            "--train-per-class",
            "100",
            "--val-split",
            "0.1",
            "--mixup",
            "0.2",
            "--early-stop",
            "3",
            "--out",
            "r/modern",
        ],
        [],
    ),
    (
        "mlp",
        T
        + [
            "mlp",
            "--dataset",
            "mnist",
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--schedule",
            "cosine",
            "--warmup-epochs",
            "1",
            "--l1",
            "1e-5",
            "--l2",
            "1e-4",
            "--dropout",
            "0.2",
            "--init",
            "he",
            "--clip-grad-norm",
            "1",
            "--epochs",
            "2",
            "--train-per-class",
            "50",
            "--test-per-class",
            "20",
            "--layer-stats",
            "--out",
            "r/mlp",
        ],
        [],
    ),
    (
        "resnet20",
        T
        + [
            "resnet20",
            "--dataset",
            "cifar10",
            "--model-kwargs",
            "width=0.25",
            "--epochs",
            "2",
            "--train-per-class",
            "20",
            "--test-per-class",
            "10",
            "--augment",
            "crop,flip,rotate,jitter,noise,scale,pca,cutout,translate",
            "--out",
            "r/resnet20",
        ],
        [],
    ),
    (
        "cnn4-whiten",
        T
        + [
            "cnn4",
            "--dataset",
            "cifar10",
            "--whiten",
            "--optimizer",
            "rmsprop",
            "--lr",
            "1e-3",
            "--schedule",
            "step",
            "--step-size",
            "1",
            "--epochs",
            "2",
            "--train-per-class",
            "30",
            "--test-per-class",
            "10",
            "--model-kwargs",
            "width=0.5",
            "--out",
            "r/cnn4-whiten",
        ],
        [],
    ),
    (
        "cnn4-center",
        T
        + [
            "cnn4",
            "--dataset",
            "cifar10",
            "--normalize",
            "center",
            "--optimizer",
            "adagrad",
            "--lr",
            "0.01",
            "--schedule",
            "plateau",
            "--epochs",
            "3",
            "--train-per-class",
            "20",
            "--test-per-class",
            "10",
            "--classes",
            "cat,dog,ship",
            "--init",
            "xavier",
            "--out",
            "r/cnn4-center",
        ],
        [],
    ),
    ("fcn8s", T + ["fcn8s", "--dataset", "mnist-scenes", "--max-steps", "6", "--out", "r/fcn8s"], []),
    (
        "folder",
        T
        + [
            "lenet5_modern",
            "--dataset",
            "folder:photos",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--val-split",
            "0.2",
            "--out",
            "r/folder",
        ],
        [],
    ),
    ("table", T + ["mlp", "--dataset", "csv:table.csv", "--target", "y", "--epochs", "3", "--out", "r/table"], []),
    (
        "interrupted",
        INTERRUPT,
        T + ["lenet5_modern", "--dataset", "mnist", "--train-per-class", "200", "--epochs", "2", "--out", "r/resumed"],
    ),
    ("resumed", T + ["lenet5_modern", "--out", "r/resumed", "--resume"], []),
    (
        "finetune",
        [
            "finetune",
            "lenet5_modern",
            "--weights",
            "r/modern",
            "--dataset",
            "cifar10",
            "--classes",
            "cat,dog",
            "--train-per-class",
            "30",
            "--test-per-class",
            "10",
            "--strategy",
            "feature-extractor",
            "--epochs",
            "2",
            "--out",
            "r/finetune",
        ],
        [],
    ),
    (
        "finetune-top",
        [
            "finetune",
            "resnet20",
            "--weights",
            "r/resnet20",
            "--dataset",
            "cifar10",
            "--train-per-class",
            "10",
            "--test-per-class",
            "5",
            "--freeze-until",
            "layer2",
            "--head-lr-mult",
            "10",
            "--epochs",
            "1",
            "--out",
            "r/finetune-top",
        ],
        [],
    ),
    ("experiment", EXPERIMENT, []),
    ("summary-resnet50", ["summary", "resnet50", "--format", "json"], []),
    ("summary-googlenet", ["summary", "googlenet", "--mode", "train", "--optimizer", "adam"], []),
    ("summary-run", ["summary", "r/fcn8s"], []),
    ("compare", ["compare", "vgg16", "resnet20", "lenet5", "alexnet"], []),
    ("models", ["models"], []),
    ("eval-lenet5", ["eval", "r/lenet5", "--format", "json"], []),
    (
        "eval-tta",
        ["eval", "r/resnet20", "--tta", "10crop", "--test-per-class", "20", "--format", "json", "--out", "ev/tta"],
        [],
    ),
    (
        "eval-whiten",
        ["eval", "r/cnn4-whiten", "--tta", "flip", "--test-per-class", "50", "--format", "json", "--out", "ev/whiten"],
        [],
    ),
    ("eval-ensemble", ["eval", "r/modern", "r/resumed", "--format", "json", "--out", "ev/ensemble"], []),
    ("eval-fcn8s", ["eval", "r/fcn8s", "--format", "json"], []),
    ("eval-folder", ["eval", "r/folder", "--format", "json"], []),
    ("predict", ["predict", "r/lenet5", "digits"], []),
    ("predict-photos", ["predict", "r/resnet20", "photos/val/cat"], []),
    ("export", ["export", "r/lenet5", "-o", "lenet5.onnx"], []),
    (
        "features",
        [
            "features",
            "lenet5_modern",
            "--weights",
            "r/modern",
            "--dataset",
            "mnist",
            "--train-per-class",
            "20",
            "--test-per-class",
            "10",
            "--classifier",
            "logreg",
            "-o",
            "f.npz",
        ],
        [],
    ),
]


def materialise(rev: str, dest: Path) -> None:
    """The cnnlab package of revision `rev` ("." for the working tree) under dest/cnnlab."""
    dest.mkdir(parents=True)
    if rev == ".":
        shutil.copytree(ROOT / "cnnlab", dest / "cnnlab", ignore=shutil.ignore_patterns("__pycache__"))
        return
    archive = subprocess.run(["git", "archive", rev, "cnnlab"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def inputs(work: Path) -> None:
    """The files the jobs read: an image folder, a CSV table and digit images, all deterministic."""
    import numpy as np

    with zipfile.ZipFile(DATA / "cifar10" / "cifar10-jpeg.zip") as z:
        for cls in ("cat", "ship", "truck"):
            for i in range(24):
                path = work / "photos" / ("train" if i < 18 else "val") / cls / f"{i:04d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(z.read(f"test/{cls}/{i:04d}.jpg"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=120)
    rows = ["a,b,c,y"] + [",".join(f"{v:.6f}" for v in (*r, t)) for r, t in zip(x, y)]
    (work / "table.csv").write_text("\n".join(rows) + "\n")
    import gzip

    from PIL import Image

    raw = gzip.open(DATA / "mnist" / "t10k-images-idx3-ubyte.gz").read()[16 : 16 + 5 * 784]
    (work / "digits").mkdir()
    for i in range(5):
        Image.frombytes("L", (28, 28), raw[i * 784 : (i + 1) * 784]).save(work / "digits" / f"{i}.png")


def run_jobs(src: Path, work: Path, log) -> dict[str, str]:
    """Run every job with the package in `src`; the normalised output of each."""
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "CNNLAB_DATA": str(DATA),
        "CNNLAB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    outputs = {}
    for name, command, extra in JOBS:
        argv = (
            [sys.executable, "-c", command, *extra]
            if isinstance(command, str)
            else [sys.executable, "-m", "cnnlab", *command]
        )
        start = time.perf_counter()
        p = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
        text = f"exit {p.returncode}\n{p.stdout}{p.stderr}"
        outputs[name] = normalise(text)
        log(f"  {name}: exit {p.returncode}, {time.perf_counter() - start:.0f}s")
    return outputs


def normalise(text: str) -> str:
    """Times and speeds left out of printed text."""
    text = re.sub(r"\d+(\.\d+)?\s?s\b", "<time>", text)
    text = re.sub(r"\d+ img/s", "<speed>", text)
    text = re.sub(r"\(\d+(\.\d+)?s\)", "(<time>)", text)
    return text


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def compare_file(a: Path, b: Path) -> tuple[bool, str]:
    """(same, what differs) for one file both revisions wrote."""
    if a.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(a, "pt") as fa, safe_open(b, "pt") as fb:
            if set(fa.keys()) != set(fb.keys()):
                return False, f"tensor names differ: {sorted(set(fa.keys()) ^ set(fb.keys()))[:5]}"
            for k in fa.keys():
                ta, tb = fa.get_tensor(k), fb.get_tensor(k)
                if (
                    ta.dtype != tb.dtype
                    or ta.shape != tb.shape
                    or not (ta.view(-1) == tb.view(-1)).all()
                    and not (ta.is_floating_point() and ta.isnan().any())
                ):
                    return False, f"tensor {k} differs"
            ma, mb = (json.loads((f.metadata() or {}).get("cnnlab", "{}")) for f in (fa, fb))
        return compare_values(strip(ma), strip(mb))
    if a.suffix in (".json", ".jsonl"):

        def read(p):
            text = p.read_text()
            return [json.loads(line) for line in text.splitlines()] if p.suffix == ".jsonl" else json.loads(text)

        return compare_values(strip(read(a)), strip(read(b)))
    if a.suffix == ".npz":
        import numpy as np

        xa, xb = np.load(a), np.load(b)
        same = set(xa.files) == set(xb.files) and all(np.array_equal(xa[k], xb[k]) for k in xa.files)
        return same, "" if same else "arrays differ"
    if a.suffix == ".md":
        same = normalise(a.read_text()) == normalise(b.read_text())
        return same, "" if same else "text differs"
    same = a.read_bytes() == b.read_bytes()
    return same, "" if same else "bytes differ"


def compare_values(a, b, where: str = "") -> tuple[bool, str]:
    """Equal values, except settings the newer revision adds (reported, not failed)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a.keys() & b.keys():
            same, why = compare_values(a[k], b[k], f"{where}.{k}")
            if not same:
                return same, why
        extra = sorted(a.keys() ^ b.keys())
        return True, f"keys in one only: {', '.join(extra)}" if extra else ""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            same, why = compare_values(x, y, f"{where}[{i}]")
            if not same:
                return same, why
        return True, ""
    same = a == b or (a != a and b != b)  # NaN equals NaN here
    return same, "" if same else f"{where or 'value'}: {a!r} != {b!r}"


# Files that record how fast or when, not what: compared, but a difference only noted
LOOSE = (".png", ".onnx", ".pt")
SKIPPED_DIRS = ("tensorboard",)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="the first revision (e.g. a commit before a change)")
    parser.add_argument("b", help="the second revision, or . for the working tree")
    parser.add_argument("--work", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the runs afterwards")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="same-behaviour-"))
    sides = {}
    for label, rev in (("a", args.a), ("b", args.b)):
        side = work / label
        if side.exists():
            shutil.rmtree(side)
        materialise(rev, side / "src")
        (side / "w").mkdir()
        inputs(side / "w")
        print(f"{label}: {rev}", flush=True)
        sides[label] = run_jobs(side / "src", side / "w", lambda line: print(line, flush=True))
    failures, notes = [], []
    for name in sides["a"]:
        if sides["a"][name] != sides["b"][name]:
            failures.append(f"output of {name} differs:\n--- a\n{sides['a'][name]}\n--- b\n{sides['b'][name]}")
    wa, wb = work / "a" / "w", work / "b" / "w"
    files_a = {p.relative_to(wa) for p in wa.rglob("*") if p.is_file() and not set(p.parts) & set(SKIPPED_DIRS)}
    files_b = {p.relative_to(wb) for p in wb.rglob("*") if p.is_file() and not set(p.parts) & set(SKIPPED_DIRS)}
    for rel in sorted(files_a ^ files_b):
        failures.append(f"{rel}: written by {'a' if rel in files_a else 'b'} only")
    compared = 0
    for rel in sorted(files_a & files_b):
        same, why = compare_file(wa / rel, wb / rel)
        compared += 1
        if not same:
            (notes if rel.suffix in LOOSE else failures).append(f"{rel}: {why}")
        elif why:
            notes.append(f"{rel}: {why}")
    print(f"\n{len(JOBS)} jobs, {compared} files compared; {len(failures)} differences")
    for line in notes:
        print(f"note: {line}")
    for line in failures:
        print(f"DIFFERENT: {line}")
    digest = hashlib.sha256("".join(sorted(sides["a"].values())).encode()).hexdigest()[:12]
    print(f"outputs digest {digest}" + ("" if failures else "; same behaviour"))
    if not args.keep and not args.work:
        shutil.rmtree(work)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
