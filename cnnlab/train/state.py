"""Where a run stands, and its run directory as training writes it: config.json, metrics.jsonl,
the resumable checkpoint (rewritten atomically), the best and the final weights; and reading a
checkpoint back to resume, refusing settings the checkpoint does not follow."""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import __version__
from ..checkpoint import MODEL_PREFIX, atomic_save, load, pack_training_state, unpack_training_state
from ..errors import CnnlabError, WeightsError, WriteError
from ..files import append_text, write_error, write_json, write_text
from ..runs import describe
from ..weights import check_state_dict
from .config import LENGTH_FREE_SCHEDULES, TrainConfig, setting_fields
from .report import plot_history, tensorboard


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

    def seconds(self) -> float:
        return time.perf_counter() - self.start


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
RESUME_MAY_CHANGE = {f.name for f in setting_fields() if f.metadata["resumable"]} | {"cnnlab_version", "git_hash"}


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


class RunFolder:
    """The run directory as training writes it; in a torchrun job rank 0 alone writes, and
    without --out nothing is written (every method is then a no-op)."""

    def __init__(self, cfg: TrainConfig, resolved: dict, writes: bool):
        self.cfg, self.resolved = cfg, resolved
        self.path = Path(cfg.out) if cfg.out else None
        self.writes = writes and self.path is not None
        self.kept: str | None = None  # where the newest resumable checkpoint stands, in words
        self.board = None

    def resume(self, model: nn.Module, opt, schedule, gen: torch.Generator, device: torch.device, log) -> Progress:
        """The checkpoint's state restored into model, optimiser, schedule and generator (every
        process of a torchrun job restores the same); where the run stands."""
        file = self.path / "checkpoint.safetensors"
        tensors, meta = load(file)
        check_state_dict(
            self.cfg.model,
            model.state_dict(),
            {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)},
            file,
        )
        if isinstance(meta.get("config"), dict):
            check_resume(self.resolved, meta["config"], self.path)
        try:
            epoch = unpack_training_state(tensors, meta, model, opt, schedule, gen)
            s = Progress(meta["history"], meta["best"], epoch + 1)
            for key in ("step_in_epoch", "loss_sum", "correct_sum", "steps_done"):
                setattr(s, key, meta.get(key) or getattr(s, key))
            if s.step_in_epoch:
                s.order = tensors["order"].to(device)
            s.start = time.perf_counter() - (meta.get("time") or (s.history[-1]["time"] if s.history else 0.0))
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise WeightsError(
                f"{file}: not a checkpoint of this run ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        self.kept = place(s.first_epoch - 1, s.step_in_epoch)
        log(
            f"resuming {self.path} after epoch {s.first_epoch - 1}"
            + (f", step {s.step_in_epoch}" if s.step_in_epoch else "")
        )
        return s

    def start(self, history: list[dict], zca: tuple[Tensor, Tensor] | None) -> None:
        """config.json, the whitening transform and the metrics so far; TensorBoard's writer."""
        if not self.writes:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob("tmp*.part"):  # a write a kill interrupted (the file it meant to replace is whole)
            stale.unlink()
        write_json(self.path / "config.json", self.resolved)
        if zca is not None:
            atomic_save(
                {"mean": zca[0], "matrix": zca[1]}, self.path / "whitening.safetensors", {"config": self.resolved}
            )
        self.write_metrics(history)
        self.board = tensorboard(self.path / "tensorboard")

    def write_metrics(self, history: list[dict]) -> None:
        """metrics.jsonl, a line per epoch, rewritten whole (a few kB): a full disk cannot leave half a line."""
        write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))

    def save_checkpoint(
        self, model, opt, schedule, gen, s: Progress, epoch_done: int, inside: dict | None = None
    ) -> None:
        """checkpoint.safetensors: everything --resume needs after `epoch_done` epochs, or with
        `inside` (step_in_epoch, loss_sum, correct_sum) inside the next epoch."""
        if not self.writes:
            return
        packed, meta = pack_training_state(
            model,
            opt,
            schedule,
            epoch_done,
            gen,
            {
                "config": self.resolved,
                "history": s.history,
                "best": s.best,
                "steps_done": s.steps_done,
                "time": s.seconds(),
                **(inside or {}),
            },
        )
        atomic_save({**packed, **({"order": s.order} if inside else {})}, self.path / "checkpoint.safetensors", meta)
        self.kept = place(epoch_done, (inside or {}).get("step_in_epoch", 0))

    def epoch_end(self, row: dict, s: Progress, model: nn.Module, better: bool) -> None:
        """The epoch's metrics (and TensorBoard scalars), the best weights if they are better."""
        if not self.writes:
            return
        self.write_metrics(s.history)
        if self.board is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.board.add_scalar(key, value, row["epoch"])
            self.board.flush()
        if better:
            atomic_save(
                model.state_dict(), self.path / "best.safetensors", {"config": self.resolved, "epoch": row["epoch"]}
            )

    def layer_stats(self, epoch: int, stats: list[dict]) -> None:
        if self.writes:
            append_text(
                self.path / "layer_stats.jsonl", "".join(json.dumps({"epoch": epoch, **r}) + "\n" for r in stats)
            )

    def finish(self, model: nn.Module, history: list[dict]) -> None:
        """model.safetensors (the final weights) and curves.png."""
        if self.writes:
            atomic_save(
                model.state_dict(),
                self.path / "model.safetensors",
                {"config": self.resolved, "epoch": history[-1]["epoch"] if history else self.cfg.epochs},
            )
            plot_history(history, self.path / "curves.png")
        if self.board is not None:
            self.board.close()

    @contextmanager
    def say_how_to_resume(self):
        """A write that fails mid-run (a full disk) stops training: the newest checkpoint is whole,
        so the error says which one it is and how to go on from it."""
        try:
            yield
        except WriteError as e:
            where, cfg = self.kept, self.cfg
            raise write_error(
                e.path,
                e.problem,
                "training stopped; "
                + (
                    f"the checkpoint {where} is kept: make room, then resume with: cnnlab train {cfg.model} --out "
                    f"{self.path} --resume"
                    if where
                    else "no checkpoint had been written yet: make room and start again"
                ),
            ) from None
