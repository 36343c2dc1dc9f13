"""Where a run stands (what a checkpoint brings back), what its config.json says, and the rules
of resuming: a run continues with its own settings."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor

from .. import __version__
from ..checkpoint import read_metadata
from ..errors import CnnlabError
from ..runs import describe
from .config import LENGTH_FREE_SCHEDULES, TrainConfig, setting_fields


@dataclass
class Progress:
    """Where a run stands: what a checkpoint brings back besides the tensors."""

    history: list[dict] = field(default_factory=list)  # a row of metrics per epoch
    best: float | None = None  # the best model's score so far (`control.score`)
    first_epoch: int = 1  # the epoch training starts with (a resumed run's next or unfinished one)
    step_in_epoch: int = 0  # steps of `first_epoch` already taken (a checkpoint inside an epoch)
    loss_sum: float = 0.0  # ... and their summed loss and training hits
    correct_sum: float = 0.0
    steps_done: int = 0  # optimisation steps over the whole run
    start: float = field(default_factory=time.perf_counter)  # perf_counter() at the run's start, less earlier time
    order: Tensor | None = None  # the order of the training examples in the current epoch
    step_losses: Tensor | None = None  # the loss and learning rate of the `step_in_epoch` steps taken
    step_lrs: list[float] = field(default_factory=list)

    def seconds(self) -> float:
        return time.perf_counter() - self.start


def torchrun_job() -> str | None:
    """The id of the torchrun job this process belongs to (None outside one)."""
    return os.environ.get("TORCHELASTIC_RUN_ID")


def restarted_job(cfg: TrainConfig) -> bool:
    """Whether torchrun restarted this job (`--max-restarts`, after a worker died) and the run in
    --out is the one it was writing: its checkpoint is this job's (a run of another job, or one
    the job was to replace, is not continued)."""
    if not cfg.out or cfg.resume or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        return False
    meta = read_metadata(Path(cfg.out) / "checkpoint.safetensors") or {}
    return torchrun_job() is not None and meta.get("job") == torchrun_job()


def refuse_existing_run(cfg: TrainConfig) -> None:
    """A new run must not overwrite the files of another one in its directory (unless it
    continues it, resume, or replaces it, overwrite)."""
    if not cfg.out or cfg.resume or cfg.overwrite:
        return
    if found := describe(cfg.out):
        files, what = found
        raise CnnlabError(
            f"{cfg.out} already holds a run{f' ({what})' if what else ''}: {', '.join(files)}; continue "
            "it with --resume, replace it with --overwrite, or choose another --out"
        )


def resolved_config(cfg: TrainConfig, data) -> dict:
    """config.json: every setting, and what training found (classes, input size, normalisation),
    the cnnlab version and the git hash."""
    return {
        **asdict(cfg),
        "num_classes": len(data.classes) or 1,
        "input_size": list(data.size),
        "image_size": list(data.image_size),
        "mean": list(data.mean),
        "std": list(data.std),
        "classes": list(data.classes),
        "cnnlab_version": __version__,
        "git_hash": _git_hash(),
        **where_it_ran(data.train.labels.device),
    }


def where_it_ran(device: torch.device) -> dict:
    """The hardware, torch version and start time (UTC) of the run (its latest start, if resumed)."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return {
        "hardware": hardware,
        "torch_version": torch.__version__,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _git_hash() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return (out.stdout.strip() or None) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# what a resumed run may do differently: where and how fast it runs, how often it saves, and
# (with a schedule that does not depend on the run's length) how many epochs it trains
WHERE_IT_RAN = {"cnnlab_version", "git_hash", "hardware", "torch_version", "started"}
RESUME_MAY_CHANGE = {f.name for f in setting_fields() if f.metadata["resumable"]} | WHERE_IT_RAN


def check_resume(resolved: dict, saved: dict, run: Path) -> None:
    """Refuse to resume a run with settings its checkpoint does not follow: the optimiser and the
    schedule come back from the checkpoint (a new --lr was written to config.json but not used), and
    a schedule laid out over the run's length cannot be lengthened (one-cycle failed, cosine rises)."""
    for key, value in resolved.items():
        if key not in RESUME_MAY_CHANGE and key in saved and json.loads(json.dumps(value)) != saved[key]:
            raise CnnlabError(
                f"{run} was trained with {key} {saved[key]!r}, not {value!r}: --resume continues a "
                f"run with its own settings; drop the option, or start a new run from its weights "
                f"(--weights {run} --out NEW)"
            )
    epochs = saved.get("epochs", resolved["epochs"])
    if resolved["epochs"] != epochs and saved["schedule"] not in LENGTH_FREE_SCHEDULES:
        raise CnnlabError(
            f"{run}'s {saved['schedule']} schedule is laid out over {epochs} epoch{'s' * (epochs != 1)}; "
            f"a resumed run keeps it (a new length would bend it): start a new run from its weights "
            f"(--weights {run} --epochs {resolved['epochs']} --out NEW), or use a schedule that does "
            f"not depend on the length ({', '.join(LENGTH_FREE_SCHEDULES)})"
        )


def place(epoch_done: int, step_in_epoch: int) -> str | None:
    """Where a checkpoint stands, in words; None before the first."""
    return (
        f"of epoch {epoch_done + 1}, step {step_in_epoch}"
        if step_in_epoch
        else f"after epoch {epoch_done}"
        if epoch_done
        else None
    )
