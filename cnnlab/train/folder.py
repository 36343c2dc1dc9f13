"""The run directory as training writes it: config.json, metrics.jsonl, the resumable checkpoint
(rewritten atomically), the best and the final weights; and its checkpoint read back to resume.

Nothing a user had is lost. The folder is locked while a process writes it (`runs.RunLock`). A
new run is written beside its --out (`runs.staging_folder`) and takes its place only with its
first checkpoint: a run that fails before then leaves nothing behind, and one that replaces
another (--overwrite) leaves the old one whole until then.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from ..checkpoint import MODEL_PREFIX, atomic_save, load, pack_training_state, unpack_training_state
from ..errors import CnnlabError, WeightsError, WriteError
from ..files import append_text, failed_write, write_error, write_json, write_text
from ..runs import RunLock, clear_stale, describe, prepare_folder, publish, staging_folder
from ..weights import check_state_dict
from .config import TrainConfig
from .report import plot_history, tensorboard
from .state import Progress, check_resume, place, refuse_existing_run, torchrun_job


def check_before_training(cfg: TrainConfig) -> None:
    """Before any work: the settings (`TrainConfig.check`), a run in --out that would be replaced
    unasked, and a place for the run that cannot be written."""
    cfg.check()
    refuse_existing_run(cfg)
    if cfg.out:
        prepare_folder(cfg.out)


class RunFolder:
    """The run directory of a run (`with RunFolder(cfg, writes) as run:`); in a torchrun job rank 0
    alone writes, and without --out nothing is written (the writing methods are then no-ops)."""

    def __init__(self, cfg: TrainConfig, writes: bool):
        self.cfg, self.resolved = cfg, {}
        self.target = Path(cfg.out) if cfg.out else None  # where the run lives, once it has a checkpoint
        self.writes = writes and self.target is not None
        self.path = self.target  # where files are written now (the staging folder until the first checkpoint)
        self.staged = False
        self.kept: str | None = None  # where the newest resumable checkpoint stands, in words
        self.board = None
        self._exit = ExitStack()

    def __enter__(self) -> RunFolder:
        """Lock the folder, clear what dead processes left beside it, and refuse to replace a run
        or a folder of other files unless asked to."""
        if not self.writes:
            return self
        self._exit.enter_context(RunLock(self.target))
        try:
            clear_stale(self.target)
            refuse_existing_run(self.cfg)
            if (
                not self.cfg.resume
                and not describe(self.target)
                and self.target.is_dir()
                and any(self.target.iterdir())
            ):
                raise CnnlabError(
                    f"{self.target} holds files that are not a cnnlab run; choose a new or empty folder for --out"
                )
        except BaseException:
            self._exit.close()  # __exit__ does not run when __enter__ raises
            raise
        if not self.cfg.resume:
            self.path, self.staged = staging_folder(self.target), True
        return self

    def __exit__(self, *exc) -> None:
        """A run that ends before its first checkpoint (an error, a divergence) leaves nothing."""
        if self.board is not None:
            self.board.close()
        if self.staged:
            shutil.rmtree(self.path, ignore_errors=True)
        self._exit.close()

    def resume(
        self, resolved: dict, model: nn.Module, opt, schedule, gen: torch.Generator, device: torch.device, log
    ) -> Progress:
        """The checkpoint's state restored into model, optimiser, schedule and generator (every
        process of a torchrun job restores the same), if it follows the run's settings as now
        `resolved`; where the run stands."""
        self.resolved = resolved
        file = self.target / "checkpoint.safetensors"
        tensors, meta = load(file)
        model_part = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
        check_state_dict(self.cfg.model, model.state_dict(), model_part, file)
        if isinstance(meta.get("config"), dict):
            check_resume(self.resolved, meta["config"], self.target)
        try:
            epoch = unpack_training_state(tensors, meta, model, opt, schedule, gen)
            s = Progress(meta["history"], meta["best"], epoch + 1)
            for key in ("step_in_epoch", "loss_sum", "correct_sum", "steps_done"):
                setattr(s, key, meta.get(key) or getattr(s, key))
            if s.step_in_epoch:
                s.order = tensors["order"].to(device)
                s.step_losses, s.step_lrs = tensors.get("step_loss"), meta.get("step_lr", [])
            s.start = time.perf_counter() - (meta.get("time") or (s.history[-1]["time"] if s.history else 0.0))
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            raise WeightsError(f"{file}: not a checkpoint of this run ({why})") from None
        self.kept = place(s.first_epoch - 1, s.step_in_epoch)
        log(
            f"resuming {self.target} after epoch {s.first_epoch - 1}"
            + (f", step {s.step_in_epoch}" if s.step_in_epoch else "")
        )
        return s

    def start(self, resolved: dict, history: list[dict], zca: tuple[Tensor, Tensor] | None) -> None:
        """config.json (`resolved`), the whitening transform and the metrics so far; TensorBoard's writer."""
        self.resolved = resolved
        if not self.writes:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise failed_write(self.target, e) from None
        for stale in self.path.glob("tmp*.part"):  # a write a kill interrupted (the file it meant to replace is whole)
            stale.unlink()
        write_json(self.path / "config.json", resolved)
        if zca is not None:
            atomic_save({"mean": zca[0], "matrix": zca[1]}, self.path / "whitening.safetensors", {"config": resolved})
        self.write_metrics(history)
        keep_steps(self.path / "steps.jsonl", len(history))
        self.board = tensorboard(self.path / "tensorboard")

    def write_metrics(self, history: list[dict]) -> None:
        """metrics.jsonl, a line per epoch, rewritten whole (a few kB): a full disk cannot leave half a line."""
        write_text(self.path / "metrics.jsonl", "".join(json.dumps(r, allow_nan=False) + "\n" for r in history))

    def save_checkpoint(
        self,
        model,
        opt,
        schedule,
        gen,
        s: Progress,
        epoch_done: int,
        inside: dict | None = None,
        step_losses: Tensor | None = None,
    ) -> None:
        """checkpoint.safetensors: everything --resume needs after `epoch_done` epochs, or with
        `inside` (step_in_epoch, loss_sum, correct_sum, step_lr) and `step_losses` inside the next
        epoch. The first one puts the run in its place."""
        if not self.writes:
            return
        extra = {
            "config": self.resolved,
            "history": s.history,
            "best": s.best,
            "steps_done": s.steps_done,
            "time": s.seconds(),
            **(inside or {}),
            **({"job": torchrun_job()} if torchrun_job() else {}),  # a torchrun restart continues its own run
        }
        packed, meta = pack_training_state(model, opt, schedule, epoch_done, gen, extra)
        within = {"order": s.order, "step_loss": step_losses.float().cpu()} if inside else {}
        atomic_save({**packed, **within}, self.path / "checkpoint.safetensors", meta)
        self.kept = place(epoch_done, (inside or {}).get("step_in_epoch", 0))
        if self.staged:
            try:
                publish(self.path, self.target)
            except OSError as e:
                raise failed_write(self.target, e) from None
            self.path, self.staged = self.target, False
            if self.board is not None:  # its writer opens files by name: a new one in the new place
                self.board.close()
                self.board = tensorboard(self.path / "tensorboard")

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

    def steps(self, epoch: int, before: int, losses: list[float], lrs: list[float]) -> None:
        """steps.jsonl: a line per epoch with the training loss and learning rate of each of its
        steps (`before`: the run's steps before the epoch), for curves at step resolution."""
        if self.writes:
            line = {"epoch": epoch, "first_step": before + 1, "loss": losses, "lr": lrs}
            append_text(self.path / "steps.jsonl", json.dumps(line) + "\n")

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

    def resume_command(self) -> str:
        """The command that continues this run, its path quoted for a shell."""
        return f"cnnlab train {self.cfg.model} --out {shlex.quote(str(self.target))} --resume"

    def what_is_kept(self) -> str:
        """What a run that stops now leaves, in words."""
        if self.kept and self.writes:
            return f"the checkpoint {self.kept} is kept in {self.target}"
        return "nothing was saved" + ("" if self.target else " (no --out)")

    @contextmanager
    def say_how_to_resume(self):
        """A write that fails mid-run (a full disk) stops training: the newest checkpoint is whole,
        so the error says which one it is and how to go on from it."""
        try:
            yield
        except WriteError as e:
            where = self.kept
            raise write_error(
                e.path,
                e.problem,
                "training stopped; "
                + (
                    f"the checkpoint {where} is kept: make room, then resume with: {self.resume_command()}"
                    if where
                    else "no checkpoint had been written yet: make room and start again"
                ),
            ) from None


def keep_steps(path: Path, epochs: int) -> None:
    """steps.jsonl as far as a resumed run's checkpoint goes: the lines of its first `epochs`
    epochs (an epoch written after the checkpoint, or half a line a full disk left, goes)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if (row := step_row(line)) and row["epoch"] <= epochs]
    write_text(path, "".join(line + "\n" for line in kept))


def step_row(line: str) -> dict | None:
    """A line of steps.jsonl, or None where it is not whole."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("epoch"), int) else None
