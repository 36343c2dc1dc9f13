"""The experiment machinery: verdicts on synthetic metrics, and a tiny real run end to end."""

import json

import pytest

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.experiments import (HELD, INCONCLUSIVE, NOT_HELD, first_epoch_below, run_experiment,
                                speedup_verdict)
from conftest import DATA


def history(errors):
    return [{"epoch": i + 1, "train_top1": 1 - e} for i, e in enumerate(errors)]


def test_verdicts_on_synthetic_metrics():
    assert first_epoch_below(history([0.6, 0.3, 0.24, 0.1]), 0.25) == 3
    assert first_epoch_below(history([0.6, 0.5]), 0.25) is None
    assert speedup_verdict([2, 2], [12, 10], budget=20)[0] == HELD  # 6x and 5x
    verdict, numbers = speedup_verdict([3], [None], budget=12)  # tanh never got there: >= 13/3
    assert verdict == HELD and numbers.startswith("median ratio >= 4.3x")
    assert speedup_verdict([5], [4], budget=12)[0] == NOT_HELD
    assert speedup_verdict([4], [6], budget=12)[0] == INCONCLUSIVE  # 1.5x: neither
    assert speedup_verdict([None], [6], budget=12)[0] == INCONCLUSIVE
    assert speedup_verdict([8], [None], budget=12)[0] == INCONCLUSIVE  # only >= 1.6x is known


def test_a_tiny_real_run_writes_the_report(tmp_path, capsys):
    log = []
    result = run_experiment("relu-vs-tanh", "small", 1, tmp_path / "exp", log=log.append, data_dir=str(DATA),
                            epochs=2, train_per_class=20)
    assert result["verdict"] in (HELD, NOT_HELD, INCONCLUSIVE) and set(result["runs"]) == {"relu-seed0", "tanh-seed0"}
    report = (tmp_path / "exp" / "report.md").read_text()
    assert report.startswith("# relu-vs-tanh") and f"**Verdict: {result['verdict']}**" in report
    assert "| relu |" in report and "| tanh |" in report and "cnnlab train cnn4" in report
    metrics = json.loads((tmp_path / "exp" / "metrics.json").read_text())
    assert len(metrics["runs"]["tanh-seed0"]) == 2 and (tmp_path / "exp" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert cnnlab.create_model("cnn4", activation="tanh").features[1].__class__.__name__ == "Tanh"
    with pytest.raises(CnnlabError, match="unknown experiment 'relu-vs-sigmoid'"):
        run_experiment("relu-vs-sigmoid")
    assert main(["experiment", "--list"]) == 0
    assert "relu-vs-tanh" in capsys.readouterr().out
