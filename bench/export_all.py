"""Export every zoo model to ONNX at its registry input size, run it in onnxruntime and compare with
PyTorch; one line per model (seconds, largest difference relative to the largest output).

    python bench/export_all.py [NAME ...]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.export import export


def main(names: list[str]) -> int:
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or cnnlab.list_models():
            start = time.perf_counter()
            try:
                r = export(name, "onnx", Path(tmp) / f"{name}.onnx")
            except CnnlabError as e:  # a refusal in one line is an answer too
                print(f"{name:16s} refused: {e}", flush=True)
                continue
            relative = r["max_abs_diff"] / max(1.0, r["max_abs_output"])
            failed += relative >= 1e-4
            print(
                f"{name:16s} {time.perf_counter() - start:6.1f} s  {r['bytes'] / 1e6:8.1f} MB  "
                f"input {tuple(r['input_size'])}  max diff / max output {relative:.1e}",
                flush=True,
            )
            Path(r["file"]).unlink()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
