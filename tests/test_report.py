"""`cnnlab report`: the loss and learning rate of every step recorded by the run, and one HTML
page per run (or several) that a real browser opens whole: nothing fetched, a quiet console,
every image decoded, not blank; its numbers those of the run and of `cnnlab eval`."""

import json
import math
import re
from pathlib import Path

import pytest
from browser import assert_seen_whole, browser  # noqa: F401 (a fixture)
from conftest import DATA, killed_inside_epoch, temperatures_csv

from cnnlab.cli import main
from cnnlab.evaluation.runs import evaluate_runs
from cnnlab.report import write_report
from cnnlab.report.experiment import gallery_page
from cnnlab.train import recipe, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(data_dir=str(DATA), train_per_class=30, test_per_class=10, batch_size=50, epochs=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short MNIST runs: LeNet-5 with layer statistics, and the MLP."""
    root = tmp_path_factory.mktemp("runs")
    train(recipe("lenet5", "mnist", out=str(root / "lenet5"), layer_stats=True, **SMALL), log=lambda line: None)
    train(recipe("mlp", "mnist", out=str(root / "mlp"), **SMALL), log=lambda line: None)
    return root


@pytest.fixture(scope="module")
def pages(runs, tmp_path_factory):
    """The report of the LeNet-5 run (by the library), and of both runs (by the command line)."""
    root = tmp_path_factory.mktemp("pages")
    one = write_report([runs / "lenet5"], root / "one.html", log=lambda line: None, data_dir=str(DATA))
    both = root / "both.html"
    assert main(["report", str(runs / "lenet5"), str(runs / "mlp"), "-o", str(both), "--data-dir", str(DATA)]) == 0
    return {"one run": one, "two runs": both}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_records_the_loss_and_learning_rate_of_every_step(runs):
    steps, epochs = lines(runs / "lenet5" / "steps.jsonl"), lines(runs / "lenet5" / "metrics.jsonl")
    assert [s["epoch"] for s in steps] == [1, 2] and [s["first_step"] for s in steps] == [1, 7]
    for s, e in zip(steps, epochs):
        assert len(s["loss"]) == len(s["lr"]) == 6  # 300 images in batches of 50
        assert sum(s["loss"]) / 6 == pytest.approx(e["train_loss"], rel=1e-6)  # the epoch's mean
    lr = steps[0]["lr"] + steps[1]["lr"]  # one-cycle: up from lr/25 to lr and down, not a tent of 2 points
    peak = lr.index(max(lr))
    assert lr[0] == pytest.approx(0.005 / 25) and 0 < peak < 11 and max(lr) == pytest.approx(0.005, rel=0.05)
    assert all(a < b for a, b in zip(lr[:peak], lr[1 : peak + 1])) and lr[-1] < lr[0]


def test_the_report_of_a_run_holds_its_numbers_and_nothing_from_outside(runs, pages):
    html = pages["one run"].read_text()
    last = lines(runs / "lenet5" / "metrics.jsonl")[-1]
    evaluated = evaluate_runs([runs / "lenet5"], data_dir=str(DATA), per_class=10)
    # the final weights on the same 100 test images: the run's own number, and cnnlab eval's per class
    assert f"top-1 {100 * last['test_top1']:.2f} %" in html and evaluated["top1"] == pytest.approx(
        last["test_top1"], abs=1e-6
    )
    for name, acc in evaluated["per_class"].items():
        assert re.search(rf"<td>{name}</td><td class=\"num\">10</td><td>.*?{100 * acc:.1f} %</td>", html)
    wrong = round(100 * (1 - last["test_top1"]))
    assert html.count('<div class="tile">') == min(24, wrong) and f"of {wrong} misclassified" in html
    assert "cnnlab train lenet5 --dataset mnist --epochs 2 --batch-size 50" in html and "--layer-stats" in html
    for section in (
        "Training curves",
        "Confusion matrix",
        "First layer&#x27;s filters",
        "Feature maps",
        "Architecture",
        "Layer statistics",
        "c1: 6@28x28",
        "60,000 parameters",
    ):
        assert section in html, section
    # self-contained: pictures are data: URIs, no address is fetched (the SVG namespace is a name, not a request)
    assert not re.findall(r"(?:src|href)=\"(?!data:|#)", html)
    assert "Content-Security-Policy" in html and "<script" not in html


def test_several_runs_compared_and_the_command_line(runs, pages, tmp_path, capsys):
    out = pages["two runs"]
    html = out.read_text()
    assert "2 runs compared" in html and html.count("<h2>lenet5: Run</h2>") == 1 and "<h2>mlp: Run</h2>" in html
    table = html[html.index("<h2>Comparison</h2>") : html.index("<h2>Curves, overlaid</h2>")]
    for run in ("lenet5", "mlp"):
        top1 = lines(runs / run / "metrics.jsonl")[-1]["test_top1"]
        assert f"test top-1 {100 * top1:.2f} % after 2 epochs" in table
    assert main(["report", str(runs / "mlp"), "-o", str(out)]) == 2  # not replaced unasked
    assert "already exists; give --overwrite" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "x.html")]) == 2
    assert "not a run directory (no config.json)" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_a_run_resumed_inside_an_epoch_keeps_its_steps(tmp_path):
    common = dict(checkpoint_steps=4, **SMALL)  # checkpoints after steps 4 and 8 (epoch 2, step 2)
    whole = train(recipe("mlp", "mnist", out=str(tmp_path / "whole"), **common), log=lambda line: None)

    with killed_inside_epoch(2, 2):
        train(recipe("mlp", "mnist", out=str(tmp_path / "run"), **common), log=lambda line: None)
    assert len(lines(tmp_path / "run" / "steps.jsonl")) == 1  # epoch 1's; epoch 2's two steps are in the checkpoint
    # a run that has not finished is reported as it stands: its last checkpoint's weights, said so
    page = write_report([tmp_path / "run"], tmp_path / "unfinished.html", data_dir=str(DATA), log=lambda line: None)
    assert "(not finished: its last checkpoint)" in page.read_text() and "the run has not finished" in page.read_text()
    train(recipe("mlp", "mnist", out=str(tmp_path / "run"), resume=True, **common), log=lambda line: None)
    assert lines(tmp_path / "run" / "steps.jsonl") == lines(tmp_path / "whole" / "steps.jsonl")
    assert whole["history"][-1]["train_loss"] == lines(tmp_path / "run" / "metrics.jsonl")[-1]["train_loss"]


def test_every_kind_of_page_opens_whole_in_a_browser(browser, pages, tmp_path):  # noqa: F811
    pages = dict(pages)
    csv = temperatures_csv(tmp_path / "temps.csv")
    train(recipe("mlp", f"csv:{csv}", target="tomorrow", out=str(tmp_path / "reg"), epochs=3), log=lambda line: None)
    pages["regression"] = write_report([tmp_path / "reg"], tmp_path / "reg.html", log=lambda line: None)
    (tmp_path / "gallery.html").write_text(gallery_page(ROOT / "docs" / "experiments.md"))
    pages["gallery"] = tmp_path / "gallery.html"
    for name in ("lenet5-maps", "resnet20-blocks", "resnet152-graph"):
        pages[name] = ROOT / "docs" / "pictures" / f"{name}.svg"
    for kind, path in pages.items():
        seen = browser.look(path)
        assert_seen_whole(seen, path)
        if path.suffix == ".html":
            assert seen.images >= (1 if kind in ("regression", "gallery") else 20), kind
        assert seen.svgs >= (1 if kind != "gallery" else 0), kind
    seen = browser.look(pages["regression"])
    rmse = lines(tmp_path / "reg" / "metrics.jsonl")[-1]["test_rmse"]
    assert f"RMSE {rmse:.4g}" in seen.text and not math.isnan(rmse)
