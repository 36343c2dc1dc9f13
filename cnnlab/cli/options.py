"""Command-line options: argparse types that say in one line what was wrong with a value, and the
flags of `cnnlab train`, derived from TrainConfig's declarations."""

from __future__ import annotations

import argparse
import json

import torch

from ..errors import CnnlabError
from ..train import TrainConfig
from ..train.config import rule_broken, setting_fields

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def parse_size(text: str) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224); argparse turns the ValueError into a one-line usage error."""
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must look like 3x224x224, got {text!r}") from None
    if not size or any(v < 1 for v in size):
        raise argparse.ArgumentTypeError(f"input size must be positive, got {text!r}")
    return size


def number(kind: type, least: float | None = None, spec: dict | None = None):
    """An argparse type: a whole number (`kind` int) or a number, at least `least` or within a
    setting's declared range (`spec`), else one line saying what was wrong."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if least is not None and value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        if spec is not None and (problem := rule_broken(spec, value)):
            raise argparse.ArgumentTypeError(problem.replace(f"got {value}", f"got {text}"))
        return value

    return parse


positive_int, non_negative_int = number(int, 1), number(int, 0)
positive_float = number(float, spec={"choices": None, "low": None, "above": 0, "below": None, "unit": ""})
non_negative_float = number(float, spec={"choices": None, "low": 0, "above": None, "below": None, "unit": ""})


def key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as JSON (numbers, true/false, lists) or else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def checked(parse):
    """An argparse type from a library parser: its CnnlabError or ValueError as a usage error."""

    def wrapped(text: str):
        try:
            return parse(text)
        except (CnnlabError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return wrapped


def add_train_options(p: argparse.ArgumentParser) -> None:
    """`cnnlab train MODEL` and a flag per TrainConfig setting (--batch-size for batch_size), with
    its help text, its values checked as declared, and --config for a file of settings."""
    p.add_argument("model", help=TrainConfig.__dataclass_fields__["model"].metadata["help"])
    for f in setting_fields():
        if f.name == "model":
            continue
        spec, kind = f.metadata, TrainConfig.kind(f.name)
        flag = "--" + f.name.replace("_", "-")
        options = {"help": spec["help"], "default": None, **spec["flag"]}
        if kind is bool and f.name != "compile":
            action = argparse.BooleanOptionalAction if TrainConfig.default(f.name) is True else "store_true"
            p.add_argument(flag, action=action, **options)
            continue
        if spec["parse"] is not None:
            options["type"] = checked(spec["parse"])
        elif f.name == "model_kwargs":
            options["type"] = key_value
        elif kind in (int, float):
            options["type"] = number(kind, spec=spec)
        if spec["choices"] is not None and kind is not tuple:
            options["choices"] = spec["choices"]
        p.add_argument(flag, **options)
    p.add_argument("--config", help="JSON or TOML file of settings (explicit flags win)")


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig settings a command line gave (None: not given); builder arguments as a dict."""
    given = {f.name: getattr(args, f.name) for f in setting_fields() if f.name != "model"}
    if given["model_kwargs"] is not None:
        given["model_kwargs"] = dict(given["model_kwargs"])
    return given
