"""One declaration per setting: the command line's flags, config files, resume rules and the
experiments' command lines all come from TrainConfig's fields, and agree with each other."""

import json
from dataclasses import fields

import pytest

from cnnlab.cli import build_parser, main
from cnnlab.errors import CnnlabError
from cnnlab.experiments import Arm, command
from cnnlab.train import TrainConfig, recipe
from cnnlab.train.config import flag_tokens, problem
from cnnlab.train.settings import configure, read_settings_file
from cnnlab.train.state import RESUME_MAY_CHANGE

# a value other than the default for every setting, of the right type and in range
OTHER = {
    "dataset": "cifar10",
    "epochs": 3,
    "engine": "numpy",
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 0.2,
    "momentum": 0.5,
    "nesterov": False,
    "weight_decay": 0.01,
    "l1": 1e-5,
    "l2": 1e-4,
    "schedule": "cosine",
    "step_size": 4,
    "gamma": 0.5,
    "warmup_epochs": 0.5,
    "label_smoothing": 0.1,
    "mixup": 0.2,
    "normalize": "center",
    "whiten": True,
    "dropout": 0.3,
    "init": "he",
    "clip_grad_norm": 2.0,
    "augment": ("crop", "flip"),
    "seed": 7,
    "device": "cpu",
    "amp": False,
    "compile": "reduce-overhead",
    "cuda_graph": True,
    "max_steps": 9,
    "overfit_batch": True,
    "layer_stats": True,
    "loss": "mse",
    "target": "y",
    "out": "runs/x",
    "resume": True,
    "overwrite": True,
    "checkpoint_steps": 5,
    "checkpoint_minutes": 1.5,
    "on_bad_image": "skip",
    "weights": "imagenet",
    "strategy": "fine-tune-top",
    "freeze_until": "layer3",
    "head_lr_mult": 10.0,
    "classes": ("cat", "dog"),
    "train_per_class": 10,
    "test_per_class": 5,
    "val_split": 0.1,
    "early_stop": 2,
    "data_dir": "/data",
    "model_kwargs": {"width": 0.5, "activation": "tanh"},
    "plateau_patience": 4,
    "lr_table": "5e-4x2,1e-5",
    "sdlm_mu": 0.05,
}


def test_every_setting_is_declared_with_help_and_a_value_to_test():
    names = [f.name for f in fields(TrainConfig)]
    assert set(OTHER) == set(names) - {"model"}, "a setting without a test value above"
    for f in fields(TrainConfig):
        assert f.metadata["help"], f.name
        if f.name != "model":
            assert OTHER[f.name] != TrainConfig.default(f.name) and TrainConfig.fits_type(f.name, OTHER[f.name])
            assert problem(f.name, OTHER[f.name]) is None


@pytest.mark.parametrize("name", sorted(OTHER))
def test_each_flag_reads_back_what_the_experiments_write(name):
    """flag_tokens (the experiments' command lines) and the CLI's flags are inverse."""
    tokens = (
        [t.strip("'") for t in flag_tokens(name, OTHER[name])]
        if name != "model_kwargs"
        else ["--model-kwargs", "width=0.5", "activation=tanh"]
    )
    args = build_parser().parse_args(["train", "mlp", *tokens])
    value = getattr(args, name)
    if name == "model_kwargs":
        value = dict(value)
    if isinstance(OTHER[name], tuple):
        value = TrainConfig(model="mlp", **{name: value}).__getattribute__(name)
    assert value == OTHER[name]
    assert build_parser().parse_args(["train", "mlp"]).__getattribute__(name) is None  # not given: the recipe's


def test_help_and_ranges_come_from_the_declaration(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in fields(TrainConfig):
        if f.name != "model":
            assert "--" + f.name.replace("_", "-") in text
    # the same rule in the same words from the command line and from Python
    for name, bad, words in (
        ("epochs", 0, "must be at least 1, got 0"),
        ("lr", -1.0, "must be positive, got -1.0"),
        ("val_split", 1.0, "must be a fraction in [0, 1), got 1.0"),
        ("weight_decay", -0.1, "must not be negative, got -0.1"),
        ("early_stop", 0, "must be at least 1 epoch, got 0"),
    ):
        with pytest.raises(CnnlabError) as e:
            recipe("mlp", "mnist", **{name: bad}).check()
        assert str(e.value).endswith(words)
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "mlp", "--" + name.replace("_", "-"), str(bad)])
        assert f"argument --{name.replace('_', '-')}: {words}" in capsys.readouterr().err


def test_config_files_take_the_settings_a_run_is_made_of(tmp_path):
    path = tmp_path / "run.json"
    in_files = {f.name for f in fields(TrainConfig) if f.metadata["in_files"]}
    assert in_files == set(OTHER) - {"out", "resume", "overwrite"}  # those say where and how to run once
    path.write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in OTHER.items() if k in in_files}))
    assert set(read_settings_file(path)) == in_files
    path.write_text(json.dumps({"out": "runs/x"}))
    with pytest.raises(CnnlabError, match="unknown setting"):
        read_settings_file(path)


def test_sources_are_layered_flags_over_file_over_recipe(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("lr = 0.02\nepochs = 4\nmodel_kwargs = { width = 0.5 }\n")
    cfg = configure("resnet20", {"dataset": "cifar10", "epochs": 2, "model_kwargs": {"activation": "x"}}, path)
    assert (cfg.lr, cfg.epochs, cfg.batch_size) == (0.02, 2, 128)  # the file's, the flag's, the recipe's
    assert cfg.model_kwargs == {"width": 0.5, "activation": "x"}  # builder arguments add up
    assert configure("mlp", {}).dataset == "mnist"


def test_what_a_resumed_run_may_change_is_declared():
    resumable = {f.name for f in fields(TrainConfig) if f.metadata["resumable"]}
    assert RESUME_MAY_CHANGE == resumable | {"cnnlab_version", "git_hash", "hardware", "torch_version", "started"}
    assert {"epochs", "device", "compile", "max_steps", "out", "early_stop"} <= resumable
    assert not {"lr", "optimizer", "schedule", "dataset", "batch_size", "augment"} & resumable


def test_overrides_and_recipes_name_unknown_settings():
    with pytest.raises(CnnlabError, match="unknown setting.*lrr"):
        recipe("mlp", "mnist", lrr=0.1)
    line = command(Arm("a", "cnn4", settings={"amp": False, "mixup": 0.2}), {})
    assert "--no-amp" in line and "--mixup 0.2" in line
