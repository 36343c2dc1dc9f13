"""How long `import cnnlab` takes, against `import torch` alone and against another revision of
cnnlab (--compare REV), each a fresh interpreter, alternated round-robin; medians.

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


def seconds(code: str, src: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(src)})
    return time.perf_counter() - start


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
    base = statistics.median(times[("python", "this")])
    print(f"median of {args.repeats}, round-robin; python {sys.version.split()[0]}")
    print("| statement | revision | median s | less interpreter start s |")
    print("|---|---|---:|---:|")
    for what, rev in cases:
        med = statistics.median(times[(what, rev)])
        print(f"| `{STATEMENTS[what]}` | {rev} | {med:.3f} | {med - base:.3f} |")
    if tmp:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
