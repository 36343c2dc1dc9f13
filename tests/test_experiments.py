"""The experiments: verdicts on synthetic metrics, the arithmetic they quote, and every
experiment run end to end in a tiny configuration on the real data."""

import json
import shutil

import pytest
import torch
from conftest import DATA

import cnnlab
from cnnlab.analysis import analyze
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.experiments import (
    EXPERIMENTS,
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    PARTLY,
    Arm,
    Finding,
    command,
    compare,
    first_epoch_below,
    inception_3a_macs,
    lower_verdict,
    overall,
    run_experiment,
    speedup_verdict,
)


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
    assert speedup_verdict([None], [6], budget=12)[0] == NOT_HELD  # only the "slow" arm got there
    assert speedup_verdict([None, 4], [6, 12], budget=12)[0] == INCONCLUSIVE
    assert speedup_verdict([8], [None], budget=12)[0] == INCONCLUSIVE  # only >= 1.6x is known
    assert lower_verdict([10.0], [12.0]) == HELD
    assert lower_verdict([12.0], [10.0]) == NOT_HELD
    assert lower_verdict([10.0], [10.4], margin=0.5) == INCONCLUSIVE
    assert lower_verdict([10.0], [10.9]) == INCONCLUSIVE  # under a point: not evidence with one seed
    # two seeds each: a 1-point difference inside +-3 points of seed noise is not evidence
    assert lower_verdict([7.0, 13.0], [9.0, 13.0]) == INCONCLUSIVE
    assert lower_verdict([10.0, 10.2], [12.0, 12.2]) == HELD
    f = [Finding(v, "") for v in (HELD, NOT_HELD, INCONCLUSIVE)]
    assert overall([f[0], f[0]]) == HELD
    assert overall([f[0], f[2]]) == overall([f[0], f[1]]) == PARTLY  # some part held, not all
    assert overall([f[1], f[2]]) == NOT_HELD and overall([f[2], f[2]]) == INCONCLUSIVE
    # a faster "six times" criterion: 1.2x is sooner by neither measure
    assert speedup_verdict([10], [12], budget=20, held_at=1.5, fails_at=1.0)[0] == INCONCLUSIVE
    assert speedup_verdict([10], [12], budget=20, held_at=4.0, fails_at=2.0)[0] == NOT_HELD


def run(label, seed, test_errors, train_error=5.0, lr=0.1):
    return {
        f"{label}-seed{seed}": [
            {"epoch": i + 1, "train_top1": 1 - train_error / 100, "test_top1": 1 - e / 100, "lr": lr}
            for i, e in enumerate(test_errors)
        ]
    }


def test_a_part_judged_and_the_seeds_agreement():
    from cnnlab.experiments.verdicts import agreement, test_error

    runs = {**run("a", 0, [20, 10.0]), **run("a", 1, [20, 10.2]), **run("a", 2, [20, 13.0])}
    runs |= {**run("b", 0, [20, 12.0]), **run("b", 1, [20, 12.1]), **run("b", 2, [20, 12.5])}

    def judge(r):
        return [compare(r, "a", "b", test_error, "test error")]

    found = judge(runs)
    # means 11.07 vs 12.2: 1.13 points, but seed 2 reversed puts twice the standard error at 1.8
    assert found[0].verdict == INCONCLUSIVE and found[0].numbers == "test error a 11.1 +- 1.7 % vs b 12.2 +- 0.26 %"
    agreement(judge, runs, found)
    assert found[0].seeds == "0 of 3 seeds agree; seed 0: held, seed 1: held, seed 2: did not hold"
    runs["a-seed2"][-1]["test_top1"] = 0.9  # seed 2 now as good as the others: all held
    found = judge(runs)
    agreement(judge, runs, found)
    assert found[0].verdict == HELD and found[0].seeds == "all 3 seeds agree"
    # an arm that never trained is not evidence, whichever way the numbers point
    runs |= run("c", 0, [90, 89.0], train_error=88.0)
    never = compare({**runs, **run("c", 1, [90, 89.0])}, "a", "c", test_error, "test error")
    assert (
        never.verdict == INCONCLUSIVE
        and "not evidence: c never trained (c-seed0: training error 88.0 %)" in never.numbers
    )
    assert compare(runs, "a", "c", test_error, "e", must_train=("a",)).verdict == HELD  # its failure is the claim


def test_the_arithmetic_the_experiments_quote():
    # GoogLeNet's inception (3a) on 28x28x192 by hand: naive 1x1 64, 3x3 128, 5x5 32 on 192 channels;
    # with reductions 1x1 64 | 1x1 96 -> 3x3 128 | 1x1 16 -> 5x5 32 | pool -> 1x1 32
    hw = 28 * 28
    naive = hw * 192 * (64 + 9 * 128 + 25 * 32)
    reduced = hw * (192 * (64 + 96 + 16 + 32) + 96 * 9 * 128 + 16 * 25 * 32)
    assert inception_3a_macs() == {"naive": naive, "with 1x1 reductions": reduced}
    assert (naive, reduced) == (303_464_448, 128_049_152)  # the reductions save 58 %
    # three 3x3 layers of C channels: 27 C^2 weights against one 7x7's 49 C^2 (+ biases), same 7x7 view
    c = 32
    stack, single = (analyze(cnnlab.create_model("filter_stack", design=d, channels=c)) for d in ("3x3", "single"))
    stem = 3 * c * 9 + c
    head = c * 10 + 10
    assert stack.totals["params"] == stem + 2 * (3 * (9 * c * c + c)) + head
    assert single.totals["params"] == stem + 2 * (49 * c * c + c) + head
    # with batch norm (the experiment's setting) each convolution's C biases become 2 C BN parameters
    for design, convs, plain in (("3x3", 7, stack), ("single", 3, single)):
        bn = cnnlab.create_model("filter_stack", design=design, channels=c, batchnorm=True)
        assert sum(p.numel() for p in bn.parameters()) == plain.totals["params"] + convs * c
    stage1_stack = [r for r in stack.layers if r.kind == "conv"][3]  # stem + three 3x3
    stage1_single = [r for r in single.layers if r.kind == "conv"][1]  # stem + one 7x7
    assert stage1_stack.receptive_field == stage1_single.receptive_field == (15, 15)  # stem's 3 (+stride 2) then 7
    # the ablation's layers really go
    names = dict(cnnlab.create_model("alexnet_cifar", remove=["conv3", "conv4"]).features.named_children())
    assert "conv3" not in names and "conv5" in names
    head = dict(cnnlab.create_model("alexnet_cifar", remove=["fc6", "fc7"]).head.named_children())
    assert set(head) == {"flatten"}
    # batch norm (the small scale's setting): each of the five convolutions trades its C biases for 2 C
    plain, bn = (cnnlab.create_model("alexnet_cifar", width=0.125, fc=256, batchnorm=b) for b in (False, True))
    widths = [8, 24, 48, 32, 32]  # 64-192-384-256-256 / 8
    assert sum(p.numel() for p in bn.parameters()) == sum(p.numel() for p in plain.parameters()) + sum(widths)
    assert [m.out_channels for m in bn.modules() if isinstance(m, torch.nn.Conv2d)] == widths
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) == 5
    with pytest.raises(CnnlabError, match="remove takes conv3, conv4, fc6, fc7; got 'conv1'"):
        cnnlab.create_model("alexnet_cifar", remove=["conv1"])


def test_commands_reproduce_the_arms():
    arm = Arm(
        "tanh",
        "cnn4",
        settings={
            "epochs": 3,
            "optimizer": "sgd",
            "lr": 0.01,
            "nesterov": False,
            "augment": (),
            "model_kwargs": {"activation": "tanh", "width": 0.5},
        },
    )
    line = command(arm, {})
    assert line.startswith("cnnlab train cnn4 --dataset cifar10 --epochs 3")
    assert "--no-nesterov" in line and "--model-kwargs activation=tanh width=0.5" in line
    argv = line.replace("'", "").split()[2:]
    argv = [a for a in argv if a not in ("S", "DIR", "--seed", "--out")]
    from cnnlab.cli import build_parser

    args = build_parser().parse_args(["train", *argv])
    assert dict(args.model_kwargs) == {"activation": "tanh", "width": 0.5} and args.nesterov is False


TINY = dict(epochs=1, max_steps=2, train_per_class=8, test_per_class=4, batch_size=16)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_runs_end_to_end(name, tmp_path):
    log = []
    result = run_experiment(name, "small", 1, tmp_path / name, log=log.append, data_dir=str(DATA), **TINY)
    assert result.verdict in (HELD, NOT_HELD, INCONCLUSIVE, PARTLY)
    exp = EXPERIMENTS[name]
    assert len(result.findings) == len(exp.parts) >= 2
    report = (tmp_path / name / "report.md").read_text()
    assert report.startswith(f"# {name}") and f"**Verdict: {result.verdict}**" in report
    assert f"({exp.source})" in report and "**Criterion.**" in report
    for i, (part, found) in enumerate(zip(exp.parts, result.findings), 1):
        assert f"{i}. {part.claim}: {part.criterion}." in report
        assert f"{i}. {part.claim}: **{found.verdict}** - {found.numbers}" in report
    assert all(f"| {row['arm']} |" in report for row in result.table)
    assert report.count("cnnlab train ") == len(result.commands) >= 2
    metrics = json.loads((tmp_path / name / "metrics.json").read_text())
    assert metrics["verdict"] == result.verdict and set(metrics["runs"]) == set(result.runs)
    assert [p["verdict"] for p in metrics["parts"]] == [f.verdict for f in result.findings]
    assert all(len(h) == 1 for h in metrics["runs"].values())
    assert (tmp_path / name / "curves.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / name / "report.html").read_text()  # the same report as a page, its runs compared
    assert f"<strong>Verdict: {result.verdict}</strong>" in page and 'src="data:image/png;base64,' in page
    trained = [k for k, h in result.runs.items() if not h[-1].get("diverged")]
    assert "<h2>Runs compared</h2>" in page and all(f"<td>{key}</td>" in page for key in trained)


def test_cli_lists_and_refuses(capsys):
    with pytest.raises(CnnlabError, match="unknown experiment 'relu-vs-sigmoid'"):
        run_experiment("relu-vs-sigmoid")
    assert main(["experiment", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPERIMENTS) and len(EXPERIMENTS) == 13


def test_the_options_the_experiments_use():
    import torch

    from cnnlab.models.layers import Maxout

    # cnn4 (89,578): BN replaces the 128 conv biases by 2 x 128 BN parameters; maxout doubles each conv's outputs
    assert sum(p.numel() for p in cnnlab.create_model("cnn4", batchnorm=True).parameters()) == 89_578 - 128 + 256
    maxout = (3 * 64 * 25 + 64) + (32 * 64 * 25 + 64) + (32 * 128 * 25 + 128) + (64 * 16 * 10 + 10)
    assert sum(p.numel() for p in cnnlab.create_model("cnn4", activation="maxout").parameters()) == maxout
    x = torch.tensor([[1.0, -2.0, 3.0, 5.0]])
    assert Maxout(2)(x).tolist() == [[1.0, 5.0]]
    net = cnnlab.create_model("mlp", hidden=[8], activation="maxout")
    assert net.hidden[0].out_features == 16 and net(torch.randn(2, 784)).shape == (2, 10)
    half = cnnlab.create_model("resnet20", width=0.5)
    assert (half.conv1.out_channels, half.fc.in_features) == (8, 32) and half(torch.randn(2, 3, 32, 32)).shape == (
        2,
        10,
    )
    assert sum(p.numel() for p in cnnlab.create_model("resnet20", width=1).parameters()) == 269_722


def test_gallery_page_from_reports(tmp_path):
    from cnnlab.experiments import Panel, plot_panels, write_gallery

    folder = tmp_path / "results" / "dropout"
    folder.mkdir(parents=True)
    table = [{"arm": "dropout 0.0", "final test error": "10.7 %"}, {"arm": "dropout 0.5", "final test error": "10.8 %"}]
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "experiment": "dropout",
                "claim": EXPERIMENTS["dropout"].claim,
                "source": EXPERIMENTS["dropout"].source,
                "scale": "small",
                "seeds": 1,
                "verdict": PARTLY,
                "parts": [
                    {
                        "claim": "lower test error",
                        "criterion": "c1",
                        "verdict": NOT_HELD,
                        "numbers": "10.8 vs 10.7",
                        "seeds": "",
                    },
                    {
                        "claim": "smaller gap",
                        "criterion": "c2",
                        "verdict": HELD,
                        "numbers": "8.8 vs 10.7",
                        "seeds": "all 3 seeds agree",
                    },
                ],
                "numbers": "gap 10.7 vs 8.8 points",
                "table": table,
                "seconds": 54.2,
                "runs": {},
            }
        )
    )
    plot_panels([Panel("epoch", "test accuracy", {"a-seed0": ([1, 2], [0.5, 0.6])})], folder / "curves.png")
    older = tmp_path / "results" / "init"  # a report from before timings were kept: no made-up time
    shutil.copytree(folder, older)
    meta = json.loads((older / "metrics.json").read_text())
    del meta["seconds"]
    (older / "metrics.json").write_text(json.dumps({**meta, "experiment": "init"}))
    page = write_gallery(tmp_path / "results", tmp_path / "docs" / "experiments.md")
    text = page.read_text()
    assert "`cnnlab experiment init --scale small --seeds 1`\n" in text and "(0 s)" not in text
    assert "## dropout" in text and "**Verdict: partly held** - lower test error: did not hold\n" in text
    assert "1. lower test error: c1.\n2. smaller gap: c2.\n" in text
    assert "2. smaller gap: **held** - 8.8 vs 10.7 (all 3 seeds agree).\n" in text
    assert "| dropout 0.5 | 10.8 % |" in text and "![dropout](experiments/dropout.png)" in text
    assert "`cnnlab experiment dropout --scale small --seeds 1` (54 s)" in text
    assert "Not run yet: relu-vs-tanh, depth" in text
    assert (tmp_path / "docs" / "experiments" / "dropout.png").read_bytes()[:4] == b"\x89PNG"
    html = (tmp_path / "docs" / "experiments.html").read_text()  # the same page in HTML, its plots inside
    assert '<section id="dropout"><h2>dropout</h2>' in html and "<strong>Verdict: partly held</strong>" in html
    assert html.count('src="data:image/png;base64,') == 2 and "experiments/dropout.png" not in html
