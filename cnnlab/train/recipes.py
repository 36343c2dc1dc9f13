"""The default recipe of each model on each dataset: the settings a run starts from, which the
settings given explicitly override."""

from __future__ import annotations

import json
from dataclasses import fields

from ..errors import CnnlabError
from .config import TrainConfig, flag_tokens

# MNIST scenes (64x64, grey, 11 classes) on a CPU: AdamW one-cycle, no flips (a mirrored digit
# is another shape); the networks' sizes below
SCENES = dict(epochs=4, batch_size=32, optimizer="adamw", lr=3e-3, weight_decay=1e-4, schedule="onecycle")

# Default recipes (model, dataset) -> settings; explicit settings win.
RECIPES = {
    # 99.1-99.2 % in two epochs (seeds 0-2): AdamW one-cycle with label smoothing, chosen in a sweep
    # against SGD and Adam at 2 and 3 epochs (bench/RESULTS.md)
    ("lenet5_modern", "mnist"): dict(
        epochs=2,
        batch_size=128,
        optimizer="adamw",
        lr=6e-3,
        weight_decay=0.05,
        label_smoothing=0.1,
        schedule="onecycle",
    ),
    # RBF outputs are negated squared distances (tens to hundreds): a 10x smaller step than for
    # a linear head keeps the first updates from blowing up
    ("lenet5", "mnist"): dict(epochs=6, batch_size=128, optimizer="sgd", lr=0.005, schedule="onecycle"),
    ("mlp", "mnist"): dict(epochs=5, batch_size=128, optimizer="sgd", lr=0.05, schedule="onecycle"),
    # He et al. 2015, Section 4.2: batch 128, SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided
    # by 10 at 32k and 48k of 64k iterations (164 epochs), 4-pixel-padded crops and flips
    **{
        (f"{kind}{depth}", "cifar10"): dict(
            epochs=164,
            batch_size=128,
            optimizer="sgd",
            lr=0.1,
            nesterov=False,
            weight_decay=1e-4,
            schedule="multistep",
            augment=("crop", "flip"),
        )
        for kind in ("resnet", "plain")
        for depth in (20, 32, 44, 56, 110)
    },
    # MNIST scenes (64x64, grey, 11 classes) on a CPU: the FCNs at 1/16 of their channels, the
    # dilated front end at 1/8 (fc6/fc7 at 1/16: they run at 1/8 resolution; at 1/16 the front end
    # was too weak for the context module to build on), "same" padding instead of
    # FCN's 100-pixel input padding, batch norm after every VGG convolution (no ImageNet weights to
    # start from)
    **{
        (name, "mnist-scenes"): dict(
            SCENES, model_kwargs={"width": 0.0625, "in_channels": 1, "pad100": False, "batch_norm": True}
        )
        for name in ("fcn32s", "fcn16s", "fcn8s")
    },
    ("dilated_frontend", "mnist-scenes"): dict(
        SCENES, model_kwargs={"width": 0.125, "fc_width": 0.0625, "in_channels": 1, "batch_norm": True}
    ),
}


# Regression on a numeric table (the lectures' temperature predictor): Adam on the squared error.
TABLE_RECIPE = dict(
    loss="mse", optimizer="adam", lr=3e-3, weight_decay=0.0, schedule="cosine", epochs=30, batch_size=32
)


def recipe(model: str, dataset: str, **overrides) -> TrainConfig:
    """The default recipe for a model and dataset, with `overrides` (None values ignored) on top."""
    unknown = sorted(set(overrides) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise CnnlabError(
            f"unknown setting(s) {', '.join(unknown)}; the settings are cnnlab.train.TrainConfig's "
            "fields (`cnnlab train --help` lists them as flags)"
        )
    base = TABLE_RECIPE if dataset.startswith("csv:") else RECIPES.get((model, dataset), {})
    settings = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    if "model_kwargs" in base and "model_kwargs" in overrides:  # builder arguments add up, the given win
        settings["model_kwargs"] = {**base["model_kwargs"], **(overrides["model_kwargs"] or {})}
    return TrainConfig(model=model, dataset=dataset, **settings)


def command_line(cfg: TrainConfig, leave_out: set[str] = frozenset()) -> str:
    """The `cnnlab train` line of `cfg`: the flags of every setting that differs from the
    model's recipe for the dataset, but those in `leave_out`."""
    base = recipe(cfg.model, cfg.dataset)
    words = [f"cnnlab train {cfg.model} --dataset {cfg.dataset}"]
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name not in leave_out | {"model", "dataset", "model_kwargs"} and value != getattr(base, f.name):
            words += flag_tokens(f.name, value)
    kwargs = {k: v for k, v in cfg.model_kwargs.items() if base.model_kwargs.get(k, object()) != v}
    if kwargs and "model_kwargs" not in leave_out:  # the builder arguments the recipe does not give
        words.append("--model-kwargs " + " ".join(f"{k}={_arg(v)}" for k, v in kwargs.items()))
    return " ".join(w for w in words if w)


def _arg(value) -> str:
    text = value if isinstance(value, str) else json.dumps(list(value) if isinstance(value, tuple) else value)
    return f"'{text}'" if any(c in text for c in ' []"') else text
