"""`cnnlab reproduce`: every entry's recipe is the paper's in cnnlab's settings, and a run writes
the paper's number and ours side by side."""

import json
import math
import shutil

import pytest
import torch
from conftest import DATA

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.reproduce import ENTRIES, reproduce
from cnnlab.train import recipe
from cnnlab.train.optim import Schedule, make_optimizer


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_every_recipe_is_a_valid_run_of_the_registered_model(name):
    e = ENTRIES[name]
    cfg = recipe(e.model, e.dataset, **e.recipe)
    cfg.check()
    assert e.deviations and e.metric and e.cite and e.where
    assert (e.value is None) == name.startswith("plain")


def test_the_resnet_recipes_are_he_et_al_s():
    papers = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}  # Table 6
    for depth, value in papers.items():
        e = ENTRIES[f"resnet{depth}-cifar10"]
        assert e.value == value and e.model == f"resnet{depth}" and e.recipe["val_split"] == 0.1  # 45k / 5k
        cfg = recipe(e.model, e.dataset, **e.recipe)
        assert (cfg.batch_size, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == (128, "sgd", 0.1, 0.9, 1e-4)
        assert not cfg.nesterov and cfg.augment == ("crop", "flip") and cfg.schedule == "multistep"
    # 64k iterations of 128 from 45k images, the lr divided by 10 at 32k and 48k
    cfg = recipe("resnet20", "cifar10", **ENTRIES["resnet20-cifar10"].recipe)
    steps = math.ceil(45_000 / 128)
    assert abs(cfg.epochs * steps - 64_000) < steps
    opt = make_optimizer(cfg, torch.nn.Linear(2, 2))
    schedule, lrs = Schedule(cfg, opt, steps), []
    for _ in range(cfg.epochs * steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    first_cut, second_cut = lrs.index(pytest.approx(0.01)), lrs.index(pytest.approx(0.001))
    assert abs(first_cut - 32_000) < steps and abs(second_cut - 48_000) < steps
    # ResNet-110 warms up for about 400 iterations
    assert ENTRIES["resnet110-cifar10"].recipe["warmup_epochs"] * steps == pytest.approx(400, abs=2)


def test_lenet5_is_trained_as_lecun_et_al_give_it():
    e = ENTRIES["lenet5-mnist"]
    cfg = recipe(e.model, e.dataset, **e.recipe)
    assert (cfg.optimizer, cfg.sdlm_mu, cfg.epochs, cfg.normalize) == ("sdlm", 0.02, 20, "lecun98")
    assert cfg.lr_table == "5e-4x2,2e-4x3,1e-4x3,5e-5x4,1e-5"  # Appendix C's rates by pass
    assert e.value == 0.95 and e.device == "CPU"


def test_a_run_writes_the_papers_number_and_ours_per_seed(tmp_path):
    out = tmp_path / "lenet"
    lines = []
    quick = dict(data_dir=str(DATA), epochs=1, train_per_class=20, test_per_class=10)
    result = reproduce("lenet5-mnist", seeds=2, out=out, log=lines.append, **quick)
    saved = json.loads((out / "result.json").read_text())
    assert saved == json.loads(json.dumps(result))  # the same, tuples as lists
    assert {"name", "metric", "paper", "ours", "unit", "recipe", "seconds"} <= set(saved)
    assert saved["paper"] == 0.95 and saved["unit"] == "% test error" and len(saved["ours"]) == 2
    for seed in (0, 1):
        run = json.loads((out / f"seed{seed}" / "config.json").read_text())
        top1 = json.loads((out / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()[-1])["test_top1"]
        assert run["seed"] == seed and saved["ours"][seed] == round(100 * (1 - top1), 2)
    assert saved["recipe"]["optimizer"] == "sdlm" and saved["changed_from_the_paper_recipe"] == {
        k: v for k, v in quick.items() if k != "data_dir"
    }
    report = (out / "report.md").read_text()
    assert "**Not the paper's recipe**" in report and "## Deviations from the paper" in report
    assert f"paper 0.95, ours {saved['mean']:.2f}" in lines[-1]
    shutil.rmtree(out / "seed0")
    with pytest.raises(CnnlabError, match="seed1 already holds a run"):  # refused before seed 0 trains again
        reproduce("lenet5-mnist", seeds=2, out=out, log=lines.append, **quick)
    assert not (out / "seed0").exists()


def test_the_command_lists_and_refuses(capsys, tmp_path):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ENTRIES) and "0.95 % test error" in listed
    assert main(["reproduce", "resnet21-cifar10"]) == 2
    assert "no paper result named 'resnet21-cifar10'" in capsys.readouterr().err
    assert main(["reproduce", "lenet5-mnist", "--list"]) == 2
    args = ["reproduce", "lenet5-mnist", "--max-steps", "2", "--out", str(tmp_path / "r"), "--data-dir", str(DATA)]
    assert main(args) == 0
    assert "paper 0.95, ours" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "result.json").read_text())["changed_from_the_paper_recipe"] == {"max_steps": 2}
