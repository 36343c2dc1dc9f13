"""How long `import cnnlab` takes, against `import torch` alone and against another revision of
cnnlab (--compare REV), each a fresh interpreter, alternated round-robin; medians. Besides the
whole interpreter's time, cnnlab's own: the import timed inside the process after torch (which
takes most of it) is already loaded.

    python bench/import_time.py [--repeats 9] [--compare REV]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATEMENTS = {"python": "pass", "torch": "import torch", "cnnlab": "import cnnlab", "cnnlab.cli": "import cnnlab.cli"}


def seconds(code: str, src: Path) -> tuple[float, float]:
    """The interpreter's whole time for `code`, and the time of `code` alone after `import torch`."""
    timed = f"import torch, time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    whole = time.perf_counter() - start
    alone = float(
        subprocess.run([sys.executable, "-c", timed], check=True, env=env, capture_output=True, text=True).stdout
    )
    return whole, alone


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--compare", help="another revision (git archive takes it), e.g. a commit before a change")
    args = parser.parse_args()
    sources = {"this": ROOT}
    tmp = None
    if args.compare:
        tmp = Path(tempfile.mkdtemp())
        archive = subprocess.run(
            ["git", "archive", args.compare, "cnnlab"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        sources[args.compare] = tmp
    cases = [(what, rev) for what in STATEMENTS for rev in (sources if what.startswith("cnnlab") else ["this"])]
    times = {case: [] for case in cases}
    for _ in range(args.repeats):
        for what, rev in cases:
            times[(what, rev)].append(seconds(STATEMENTS[what], sources[rev]))
    print(f"median of {args.repeats}, round-robin; python {sys.version.split()[0]}")
    print("| statement | revision | whole interpreter s | after torch is loaded s |")
    print("|---|---|---:|---:|")
    for what, rev in cases:
        whole = statistics.median(t[0] for t in times[(what, rev)])
        alone = statistics.median(t[1] for t in times[(what, rev)])
        print(f"| `{STATEMENTS[what]}` | {rev} | {whole:.3f} | {alone:.3f} |")
    if tmp:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
