"""Where a run's settings come from, each source winning over the next: the settings given (flags,
keyword arguments), a config file (JSON or TOML), the run being resumed (its config.json), and
the model's default recipe for the dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CnnlabError
from ..runs import read_config
from .config import TrainConfig, setting_fields
from .recipes import recipe


def read_settings_file(path: str | os.PathLike) -> dict:
    """Settings from a JSON or TOML file (the keys of TrainConfig that config files may set)."""
    p = Path(path)
    kind = "TOML" if p.suffix == ".toml" else "JSON"
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise CnnlabError(f"config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CnnlabError(f"config file {path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    try:
        if p.suffix == ".toml":
            import tomllib  # Python 3.11 and newer

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except RecursionError:
        raise CnnlabError(f"config file {path}: {kind} nested too deeply to be a table of settings") from None
    except (ValueError, ImportError) as e:
        raise CnnlabError(f"config file {path}: not valid {kind} ({e})") from None
    if not isinstance(data, dict):
        raise CnnlabError(f"config file {path}: expected a table of settings")
    known = {f.name for f in setting_fields() if f.metadata["in_files"]}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CnnlabError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    for key, value in data.items():
        if not TrainConfig.fits_type(key, value):
            raise CnnlabError(f"config file {path}: {key} = {value!r} should be like {TrainConfig.example(key)!r}")
    return data


def resumed_settings(out: str | os.PathLike, model: str) -> dict:
    """The settings a run in `out` was started with (its config.json), those --resume restores."""
    if not (Path(out) / "config.json").is_file():
        return {}
    saved = read_config(out, need=())
    if saved.get("model") != model:
        raise CnnlabError(f"{out} is a run of {saved.get('model')}, not of {model}")
    keep = {f.name for f in setting_fields() if f.metadata["restored"]} - {"model"}
    return {k: v for k, v in saved.items() if k in keep}


def configure(model: str, given: dict, config_file: str | os.PathLike | None = None) -> TrainConfig:
    """The TrainConfig of a run from its sources: `given` (None values: not given) over a config
    file, over the resumed run's own settings (with given resume and out), over the model's
    recipe for the dataset (mnist unless a source names one). Builder arguments add up."""
    given = {k: v for k, v in given.items() if v is not None}
    sources = [
        resumed_settings(given["out"], model) if given.get("resume") and given.get("out") else {},
        read_settings_file(config_file) if config_file else {},
        given,
    ]
    settings: dict = {}
    for source in sources:
        for key, value in source.items():
            settings[key] = {**settings[key], **value} if isinstance(value, dict) and key in settings else value
    dataset = settings.pop("dataset", None) or "mnist"
    return recipe(model, dataset, **settings)
