"""The training loop. `train()` reads as its table of contents: set up, train epoch by epoch,
save. `train_epoch()` holds the step itself: forward, loss, backward, optimiser step, schedule."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..data.loaders import eval_batches
from ..data.segmentation import IGNORE
from ..device import Dist, all_reduce, leave_distributed, setup_distributed
from ..errors import CnnlabError, TrainingDiverged, TrainingInterrupted
from ..evaluation.metrics import evaluate
from ..scratch.engine import NumpyModel, numpy_loss
from .batches import epoch_batches, epoch_order, full_batch_size, seen_images
from .config import TrainConfig
from .control import StopRequest, agree, score, stalled
from .folder import RunFolder
from .graphed import GraphedStep, check_device
from .losses import loss_fn, mix_batch, penalty
from .optim import Schedule, make_optimizer
from .prepare import RunData, build_model, place_data, read_examples
from .report import early_stop_line, epoch_line, progress_bar
from .sdlm import PATTERNS, SDLM
from .state import Progress, resolved_config
from .stats import layer_statistics


@dataclass
class Parts:
    """What the loop works with, set up once per run."""

    cfg: TrainConfig
    model: nn.Module
    net: nn.Module  # the model as the step runs it: wrapped for torchrun, compiled
    eager: nn.Module  # the same, not compiled: for batches of another size than `full`
    full: int  # images in a full batch of this process, the size the compiled step is built for
    frozen: list[nn.Module]
    data: RunData
    opt: torch.optim.Optimizer
    schedule: Schedule
    gen: torch.Generator  # draws the order of the examples and the augmentations
    autocast: torch.autocast
    loss: Callable  # (output, labels, label smoothing) -> the batch's loss
    scorer: nn.Module  # what evaluation runs: the model, or its NumPy network
    steps_per_epoch: int
    device: torch.device
    d: Dist
    graphed: GraphedStep | None = None  # the full-batch step as a CUDA graph (--cuda-graph)


def train(cfg: TrainConfig, log=print) -> dict:
    """Train cfg.model on cfg.dataset; returns the final test metrics, the history and the model.

    With cfg.out the run directory gets config.json (resolved settings, cnnlab version, git hash,
    input normalisation `mean`/`std`), metrics.jsonl (one line per epoch), checkpoint.safetensors
    (everything --resume needs, rewritten atomically every epoch), best.safetensors (the weights
    of the best model so far, by validation or else test metrics) and model.safetensors (the
    final weights).
    """
    # settings that cannot work are refused before any work
    cfg.check()
    # this process's place in a torchrun job: rank 0 speaks and writes for all
    d, device = setup_distributed("cpu" if cfg.engine == "numpy" else cfg.device)
    if cfg.cuda_graph:
        check_device(device, d.world)
    log = log if d.rank == 0 else _silent
    # the run folder is ours while we train; a new run is written beside it until its first checkpoint
    with RunFolder(cfg, writes=d.rank == 0) as run:
        # the data and the model; the model's initialisation is the first draw from the seed
        torch.manual_seed(cfg.seed)
        examples = read_examples(cfg, device)
        model, frozen = build_model(cfg, examples.classes, device)
        data = place_data(cfg, examples, model, device, log)
        # the step as it runs: the model wrapped for torchrun and torch.compile, optimiser, schedule
        p = assemble(cfg, model, frozen, data, device, d, log)
        # resuming restores weights, optimiser, schedule and generators from the checkpoint
        resolved = resolved_config(cfg, data)
        s = (
            run.resume(resolved, model, p.opt, p.schedule, p.gen, data.train.labels.device, log)
            if cfg.resume
            else Progress()
        )
        s.steps_done = s.steps_done or (s.first_epoch - 1) * p.steps_per_epoch
        run.start(resolved, s.history, data.train.zca if cfg.whiten else None)
        # the epochs; Ctrl-C or SIGTERM stops after a checkpoint, and a full disk says how to go on
        if stopped := stalled(s.history, cfg.early_stop):  # a resumed run that had already stopped early
            log(early_stop_line(stopped, cfg.early_stop, run.writes, len(data.classes) or 1))
        with StopRequest() as stop, run.say_how_to_resume():
            for epoch in range(s.first_epoch, cfg.epochs + 1 if not stopped else s.first_epoch):
                row = train_epoch(p, s, epoch, stop, run)
                if end_epoch(p, s, row, run, log):
                    break
        # the final weights and curves
        run.finish(model, s.history)
    leave_distributed(d)
    test = {k[5:]: v for k, v in s.history[-1].items() if k.startswith("test_")}
    return {"test": test, "history": s.history, "model": model, "num_classes": len(data.classes) or 1}


def assemble(
    cfg: TrainConfig, model: nn.Module, frozen: list, data: RunData, device: torch.device, d: Dist, log
) -> Parts:
    """The model as the step runs it (DistributedDataParallel in a torchrun job, torch.compile if
    asked), the optimiser, the schedule, and the generator of the batches."""
    steps_per_epoch = 1 if cfg.overfit_batch else math.ceil(len(data.train) / cfg.batch_size)
    net = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        log(
            f"distributed: {d.world} processes, global batch {cfg.batch_size} ({cfg.batch_size // d.world} per "
            f"process), lr {cfg.lr} as given (for a global batch k times larger, the linear scaling rule "
            "multiplies the lr by k)"
        )
    if cfg.engine == "numpy":
        if d.world > 1:
            raise CnnlabError("--engine numpy trains in one process; run it without torchrun")
        net = NumpyModel(model)
    eager = net
    if cfg.compile:
        net = torch.compile(net, mode=None if cfg.compile in (True, "default") else cfg.compile)
    opt = make_optimizer(cfg, model)
    p = Parts(
        cfg,
        model,
        net,
        eager,
        full_batch_size(data.train, cfg, d),
        frozen,
        data,
        opt,
        Schedule(cfg, opt, steps_per_epoch),
        torch.Generator(device=device).manual_seed(cfg.seed),
        # a captured step casts the weights anew at every replay: autocast's cache would keep the first casts
        torch.autocast(
            "cuda", dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda", cache_enabled=not cfg.cuda_graph
        ),
        numpy_loss if cfg.engine == "numpy" else loss_fn,
        eager if cfg.engine == "numpy" else model,
        steps_per_epoch,
        device,
        d,
    )
    if cfg.cuda_graph:
        p.graphed = GraphedStep(graphed_body(p), opt, p.gen, p.full, device)
    return p


@dataclass
class Epoch:
    """One epoch as it runs. Its sums stay on the device, where reading one waits for it."""

    number: int
    first: int  # its steps taken before (a run resumed inside it)
    total: torch.Tensor  # the summed loss
    correct: torch.Tensor  # the summed training hits
    bad_step: torch.Tensor  # the first step whose loss was not finite (-1: none)
    losses: torch.Tensor  # the loss of each step, kept on the device (reading one would wait for it)
    lrs: list[float]  # the learning rate of each step
    taken: int = 0  # its steps taken so far
    start: float = field(default_factory=time.perf_counter)
    last_save: float = field(default_factory=time.perf_counter)  # when a checkpoint was last written in it


def train_epoch(p: Parts, s: Progress, epoch: int, stop: StopRequest, run: RunFolder) -> dict:
    """One pass over the training set (the rest of it, for a run resumed inside this epoch); the
    start of the epoch's row of metrics: its training loss and top-1, speed and time."""
    cfg, opt = p.cfg, p.opt
    e = begin_epoch(p, s, epoch)
    first = e.first
    bar = progress_bar(p.steps_per_epoch, f"epoch {epoch}/{cfg.epochs}")
    batches = epoch_batches(p.data.train, cfg, p.gen, epoch, s.order, p.d, first, indices=p.graphed is not None)
    for i, batch in enumerate(batches, first):
        lr = opt.param_groups[0]["lr"]
        with out_of_memory_hint(cfg, p.device):
            out, loss, y, mixed = take_step(p, s, batch)
        e.bad_step = torch.where((e.bad_step < 0) & ~torch.isfinite(loss), s.steps_done + 1, e.bad_step)
        p.schedule.step()
        # the epoch's sums: the loss, and the top-1 as the batch was seen (augmented, dropout on), like Keras'
        e.total += loss
        e.losses[i] = loss
        e.lrs.append(lr)
        if p.data.classes:
            e.correct += hits(out, y, *mixed)
        s.steps_done, e.taken = s.steps_done + 1, i + 1
        done = bool(cfg.max_steps) and s.steps_done >= cfg.max_steps
        # between steps: a loss that is not finite or a stop request ends the run; a checkpoint may be due
        between_steps(p, s, e, run, stop, done, loss, lr)
        if done:
            break
        if bar is not None and i % 20 == 0:
            speed = (i + 1 - first) * cfg.batch_size / (time.perf_counter() - e.start)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.3g}", img_s=f"{speed:.0f}")
            bar.update(min(20, p.steps_per_epoch - i))
    if bar is not None:
        bar.close()
    train_loss = all_reduce(e.total, p.d).item() / e.taken / p.d.world  # waits for the device
    seconds = time.perf_counter() - e.start
    p.schedule.epoch_end(train_loss)
    run.steps(epoch, s.steps_done - e.taken, (all_reduce(e.losses[: e.taken], p.d) / p.d.world).tolist(), e.lrs)
    row = {"epoch": epoch, "train_loss": train_loss}
    if p.data.classes:
        row["train_top1"] = all_reduce(e.correct, p.d).item() / seen_images(e.taken, cfg, p.data.train)
    return {**row, "seconds": seconds, "images": min((e.taken - first) * cfg.batch_size, len(p.data.train))}


def take_step(p: Parts, s: Progress, batch) -> tuple:
    """One optimisation step on a batch ((images, labels), or the examples' indices where the
    step is a CUDA graph): (output, loss, labels, (mixup partners' labels, their weight))."""
    cfg = p.cfg
    if p.graphed is not None:
        if len(batch) == p.full:
            return (*p.graphed(batch), (None, 1.0))
        batch = p.data.train.batch(batch, cfg.augment, p.gen)  # an epoch's short last batch, eagerly
    x, y = batch
    if cfg.compile == "reduce-overhead":  # a new step: the CUDA graphs' last outputs are done with
        torch.compiler.cudagraph_mark_step_begin()
    mixed = (None, 1.0)
    if cfg.mixup:  # each image blended with a partner; the loss blends their labels alike
        x, y_mixed, lam = mix_batch(x, y, cfg.mixup, cfg.seed, s.steps_done, p.gen)
        mixed = (y_mixed, lam)
    out, loss = optimise(p, x, y, mixed)
    return out, loss.detach(), y, mixed


def optimise(p: Parts, x: Tensor, y: Tensor, mixed: tuple) -> tuple:
    """Forward, loss, backward, clipping and the optimiser's step: (output, loss)."""
    cfg, (y_mixed, lam) = p.cfg, mixed
    with p.autocast:  # bf16 on CUDA; a short last batch runs eagerly, not through a new compilation
        out = (p.net if len(x) == p.full else p.eager)(x)
        loss = (
            lam * p.loss(out, y, cfg.label_smoothing) + (1 - lam) * p.loss(out, y_mixed, cfg.label_smoothing)
            if y_mixed is not None
            else p.loss(out, y, cfg.label_smoothing)
        ) + penalty(p.model, cfg.l1, cfg.l2)
    p.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip_grad_norm:
        nn.utils.clip_grad_norm_(p.model.parameters(), cfg.clip_grad_norm)
    p.opt.step()
    return out, loss


def graphed_body(p: Parts) -> Callable:
    """The step a CUDA graph captures: the batch of the examples `indices` (augmented on the
    device), then `optimise`; (output, loss, labels)."""

    def body(indices: Tensor) -> tuple:
        x, y = p.data.train.batch(indices, p.cfg.augment, p.gen)
        return (*optimise(p, x, y, (None, 1.0)), y)

    return body


def begin_epoch(p: Parts, s: Progress, epoch: int) -> Epoch:
    """The model in training mode (frozen layers not), the epoch's order of examples, and its sums:
    from zero, or for a run resumed inside this epoch those of the steps before its checkpoint."""
    p.model.train()
    for m in p.frozen:  # fixed layers keep their batch-norm statistics and drop nothing
        m.eval()
    first = s.step_in_epoch if epoch == s.first_epoch else 0
    if not first:
        s.order = epoch_order(p.data.train, p.cfg, p.gen, epoch)
        if isinstance(p.opt, SDLM):  # LeCun's: the curvature anew before each pass, on patterns of this one
            p.opt.estimate_curvature(p.model, p.data.train.batch(s.order[:PATTERNS])[0])
    e = Epoch(
        epoch,
        first,
        torch.full((), s.loss_sum if first else 0.0, device=p.device),
        torch.full((), float(s.correct_sum) if first else 0.0, device=p.device),
        torch.full((), -1, device=p.device),
        torch.zeros(p.steps_per_epoch, device=p.device),
        s.step_lrs[:first] if first else [],
        first,
    )
    if first and s.step_losses is not None:  # the steps taken before the checkpoint this run resumed from
        e.losses[:first] = s.step_losses.to(p.device)
    return e


def hits(out, y: torch.Tensor, y_mixed: torch.Tensor | None, lam: float) -> torch.Tensor:
    """Correct predictions in a batch (segmentation: each image's pixel accuracy, summed); a mixup
    blend is as right as the share of the label it was given."""
    predicted = (out[0] if isinstance(out, tuple) else out).argmax(1)
    right = predicted == y
    if y_mixed is not None:
        right = lam * right + (1 - lam) * (predicted == y_mixed)
    if y.ndim == 1:
        return right.sum()
    return (right.sum((1, 2)) / (y != IGNORE).sum((1, 2)).clamp_min(1)).sum()


def between_steps(p: Parts, s: Progress, e: Epoch, run: RunFolder, stop: StopRequest, done: bool, loss, lr: float):
    """After a step, now and then (every step on one CPU; every 20 where a check waits for a
    device or the other processes): stop on a loss that is not finite, write a checkpoint when
    one is due or a stop was asked for, then stop."""
    cfg = p.cfg
    due = (
        run.writes
        and e.taken < p.steps_per_epoch
        and not done
        and (
            (cfg.checkpoint_steps and s.steps_done % cfg.checkpoint_steps == 0)
            or (cfg.checkpoint_minutes and time.perf_counter() - e.last_save >= 60 * cfg.checkpoint_minutes)
        )
    )
    check_every = 1 if p.device.type == "cpu" and p.d.world == 1 else 20
    if not (due or done or s.steps_done % check_every == 0 or e.taken == p.steps_per_epoch):
        return
    stopping, first_bad = agree(stop.signal, e.bad_step, p.d)
    if first_bad >= 0:
        raise TrainingDiverged(
            f"the loss became {loss.item()} at step {first_bad} (epoch {e.number}, lr {lr:.4g}); "
            f"{run.what_is_kept()}; try a smaller --lr or --clip-grad-norm"
        )
    if (due or stopping) and run.writes:
        inside = {
            "step_in_epoch": e.taken,
            "loss_sum": e.total.item(),
            "correct_sum": e.correct.item(),
            "step_lr": e.lrs,
        }
        run.save_checkpoint(p.model, p.opt, p.schedule, p.gen, s, e.number - 1, inside, e.losses[: e.taken])
        e.last_save = time.perf_counter()
    if stopping:
        interrupted = TrainingInterrupted(
            f"stopped by {stopping} at epoch {e.number}, step {e.taken}; "
            + (
                f"the checkpoint is saved; resume with: {run.resume_command()}"
                if cfg.out
                else "nothing was saved (no --out)"
            )
        )
        interrupted.exit_code = 128 + signal.Signals[stopping].value  # 130 Ctrl-C, 143 SIGTERM
        raise interrupted


def end_epoch(p: Parts, s: Progress, row: dict, run: RunFolder, log) -> bool:
    """The epoch's evaluation (validation and test), its row in the history, the run directory
    brought up to date; True when training ends here (early stopping, or the step limit)."""
    cfg, model, epoch = p.cfg, p.model, row["epoch"]
    classes = len(p.data.classes) or 1
    if cfg.layer_stats and p.d.rank == 0:
        stats = layer_statistics(model, *next(eval_batches(p.data.train, min(256, cfg.batch_size))))
        run.layer_stats(epoch, stats)
        log(
            "gradient norms, input to output: "
            + ", ".join(f"{r['layer']} {r['grad_norm']:.2e}" for r in stats if r["grad_norm"] is not None)
        )
    with p.autocast:
        test = evaluate(p.scorer, p.data.test, d=p.d)
        val = evaluate(p.scorer, p.data.val, d=p.d) if p.data.val is not None else {}
    for split, metrics in (("test", test), ("validation", val)):
        if not all(math.isfinite(v) for v in metrics.values()):  # a diverged model, not a result to keep
            raise TrainingDiverged(
                f"the {split} loss became {metrics['loss']} after epoch {epoch}; "
                f"{run.what_is_kept()}; try a smaller --lr or --clip-grad-norm"
            )
    seconds, images = row.pop("seconds"), row.pop("images")
    row.update(
        {
            **{f"test_{k}": v for k, v in test.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": p.opt.param_groups[0]["lr"],
            "images_per_s": images / seconds,
            "time": s.seconds(),
        }
    )
    s.history.append(row)
    better = run.writes and (s.best is None or score(row) > s.best)
    if better:
        s.best = score(row)
    run.epoch_end(row, s, model, better)
    run.save_checkpoint(model, p.opt, p.schedule, p.gen, s, epoch)
    log(epoch_line(row, cfg.epochs, classes))
    if stopped := stalled(s.history, cfg.early_stop):
        log(early_stop_line(stopped, cfg.early_stop, run.writes, classes))
        return True
    if cfg.max_steps and s.steps_done >= cfg.max_steps:
        log(f"stopped after {s.steps_done} steps (max steps)")
        return True
    return False


@contextmanager
def out_of_memory_hint(cfg: TrainConfig, device: torch.device):
    """A CUDA out-of-memory error is one line with a batch size to try."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise CnnlabError(
            f"out of memory on {device} at batch size {cfg.batch_size}; try --batch-size {max(1, cfg.batch_size // 2)}"
        ) from None


def _silent(line: str) -> None:
    """The log of the processes of a torchrun job other than rank 0."""
