"""What a run folder holds, read for a report: its settings (config.json), its metrics per epoch
(metrics.jsonl), its loss and learning rate per step (steps.jsonl) and its layer statistics
(layer_stats.jsonl), each checked as it is read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CnnlabError
from ..runs import read_config
from ..train.config import TrainConfig
from ..train.folder import step_row
from ..train.recipes import command_line

SETTINGS = set(TrainConfig.__dataclass_fields__)


@dataclass
class Record:
    path: Path
    config: dict
    history: list[dict]
    steps: list[dict] = field(default_factory=list)  # a row per epoch: first_step, loss, lr (lists)
    layer_stats: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def finished(self) -> bool:
        return (self.path / "model.safetensors").is_file()

    @property
    def weights(self) -> Path:
        """What the report evaluates: the run (its final weights), or for a run that has not
        finished (stopped, or still training) the weights of its last checkpoint."""
        return self.path if self.finished else self.path / "checkpoint.safetensors"

    @property
    def task(self) -> str:
        """classification, segmentation or regression, by what the run measured."""
        last = self.history[-1]
        return "segmentation" if "test_miou" in last else "classification" if "test_top1" in last else "regression"

    def command(self) -> str:
        """The `cnnlab train` line that makes this run: the flags of the settings that differ from
        the model's recipe for the dataset."""
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.items() if k in SETTINGS}
        try:
            cfg = TrainConfig(**known)
        except TypeError:  # a config.json of an older version without some setting
            return f"cnnlab train {self.config['model']} --dataset {self.config['dataset']} ..."
        return command_line(cfg, {"resume", "overwrite", "classes"})

    def step_curve(self) -> tuple[list[float], list[float], list[float]] | None:
        """(epoch position of each step, its loss, its learning rate), or None where the run did
        not record steps (runs of older versions)."""
        xs, losses, lrs = [], [], []
        for row in self.steps:
            n = len(row["loss"])
            xs += [row["epoch"] - 1 + (i + 1) / n for i in range(n)]
            losses += row["loss"]
            lrs += row["lr"]
        return (xs, losses, lrs) if xs else None


def read_record(path: str | Path) -> Record:
    """A run folder as a Record; a folder that is not a finished-or-running run is one error."""
    path = Path(path)
    if not path.is_dir():
        raise CnnlabError(f"{path}: not a run folder (give the --out folder of a `cnnlab train` run)")
    config = read_config(path)
    history = read_lines(path / "metrics.jsonl")
    if not history:
        raise CnnlabError(f"{path}: the run has not finished an epoch yet (metrics.jsonl is empty); nothing to report")
    steps = [r for line in _lines(path / "steps.jsonl") if (r := step_row(line)) and _steps_ok(r)]
    return Record(path, config, history, steps, read_lines(path / "layer_stats.jsonl"))


def read_lines(path: Path) -> list[dict]:
    """The whole JSON lines of a file (a line cut short by a full disk is left out)."""
    rows = []
    for line in _lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    except (OSError, UnicodeDecodeError) as e:
        raise CnnlabError(f"{path}: cannot be read ({e})") from None


def _steps_ok(row: dict) -> bool:
    loss, lr = row.get("loss"), row.get("lr")
    return isinstance(loss, list) and isinstance(lr, list) and len(loss) == len(lr) > 0
