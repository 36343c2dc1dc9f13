"""bench/gpu_suite.py runs every GPU figure of the reproductions; its --smoke mode runs the same
code on the CPU at toy sizes, here, so that it still works when a GPU comes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA

SUITE = Path(__file__).resolve().parents[1] / "bench" / "gpu_suite.py"


def test_the_gpu_suite_runs_on_the_cpu_in_smoke_mode(tmp_path):
    env = {**os.environ, "CNNLAB_DATA": str(DATA), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SUITE), "--smoke", "--out", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["smoke"] and results["device"] == "cpu"
    check = results["graph_check"]  # the captured step (replayed by calling it again) against the eager one
    assert check["same_within_1e-3"] and check["train_loss"]["graph"] == pytest.approx(check["train_loss"]["eager"])
    steps = {(r["step"], r["model"]): r for r in results["steps"]}
    assert set(steps) == {
        ("trainer eager", "resnet20"),
        ("trainer graph", "resnet20"),
        ("bare eager", "resnet20"),
        ("bare graph", "resnet20"),
        ("bare eager", "resnet50"),
        ("bare graph", "resnet50"),
    }
    for r in steps.values():
        assert r["images_per_s"] > 0 and r["tflops"] > 0 and r["mfu"] is None
    assert set(results["ratios"]) == {
        "trainer_graph_over_eager",
        "trainer_graph_over_bare_eager",
        "trainer_eager_over_bare_eager",
        "bare_graph_over_eager_resnet50",
    }
    assert [r["model"] for r in results["zoo"]] == ["lenet5", "resnet20", "alexnet_cifar"]
    assert all(r["images_per_s"] > 0 for r in results["zoo"])
    repro = results["reproduction"]
    assert repro["name"] == "resnet20-cifar10" and repro["paper"] == 8.75 and len(repro["ours"]) == 1
    assert repro["cuda_graph"]  # the captured step, as on a GPU; not a change of the recipe
    assert repro["changed_from_the_paper_recipe"]["max_steps"] == 2  # a check that it runs, said so
    assert "cuda_graph" not in repro["changed_from_the_paper_recipe"]
    assert (tmp_path / "resnet20-cifar10" / "report.md").is_file()
    assert "| trainer graph | resnet20 | 8 |" in (tmp_path / "results.md").read_text()
