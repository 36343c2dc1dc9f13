"""The optimiser and the learning-rate schedule of a run."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import CnnlabError
from ..models.adapt import head_name
from ..scratch.engine import numpy_optimizer
from .config import TrainConfig, lr_steps
from .sdlm import SDLM


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(cfg, model)
    params = [p for g in groups for p in g["params"]]
    wd = cfg.weight_decay
    if cfg.engine == "numpy":  # the same optimisers, their steps in NumPy
        return numpy_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum, cfg.nesterov, wd)
    # one fused kernel for all parameters where PyTorch has one (CPU and CUDA) instead of a loop
    # over the parameter tensors
    fused = {"fused": True} if fusable(params) else {}
    if cfg.optimizer == "sgd":  # momentum 0 is plain mini-batch SGD
        return torch.optim.SGD(
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=wd,
            **fused,
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=wd, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=wd, **fused)
    if cfg.optimizer == "sdlm":
        return SDLM(groups, lr=cfg.lr, mu=cfg.sdlm_mu, weight_decay=wd)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)
    return torch.optim.Adagrad(groups, lr=cfg.lr, weight_decay=wd)


def param_groups(cfg: TrainConfig, model: nn.Module) -> list[dict]:
    """The trainable parameters; with head_lr_mult, the classifier's in a group of its own with
    lr x head_lr_mult (a new head learns faster than pretrained layers should change)."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise CnnlabError("nothing to train: every parameter is frozen")
    if cfg.head_lr_mult == 1.0:
        return [{"params": [p for _, p in trainable]}]
    head = head_name(model)
    body = [p for n, p in trainable if not n.startswith(head + ".")]
    top = [p for n, p in trainable if n.startswith(head + ".")]
    return ([{"params": body}] if body else []) + [{"params": top, "lr": cfg.lr * cfg.head_lr_mult}]


def fusable(params: list[Tensor]) -> bool:
    """Fused SGD/Adam/AdamW exist for float parameters on the CPU and CUDA from PyTorch 2.4."""
    version = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    return (
        version >= (2, 4)
        and bool(params)
        and all(
            p.device.type in ("cpu", "cuda")
            and p.dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16)
            for p in params
        )
    )


def table_by_epoch(table: str, epochs: int) -> list[float]:
    """The lr of each of `epochs` epochs by an lr table; its last value holds beyond the table."""
    values = []
    for lr, count in lr_steps(table):
        values += [lr] * (count if count is not None else max(epochs - len(values), 0))
    return (values + [values[-1]] * epochs)[:epochs]


class Schedule:
    """The learning rate over training: optional linear warm-up, then the chosen schedule.
    `step()` runs after every optimisation step, `epoch_end(loss)` after every epoch."""

    def __init__(self, cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int):
        sched = torch.optim.lr_scheduler
        self.kind, self.steps_per_epoch = cfg.schedule, steps_per_epoch
        total = cfg.epochs * steps_per_epoch
        self.warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total - 1)
        rest = total - self.warmup
        if cfg.schedule == "onecycle":
            # a quarter of the steps rising; PyTorch divides by (pct_start x steps - 1), so runs of
            # up to 4 steps rise for longer (4 steps at 0.25 would divide by zero)
            # momentum (Adam's beta1) cycles 0.95 -> 0.85 -> 0.95 against the lr, as in Smith's policy,
            # where the optimiser has one: Adagrad has none, and momentum 0 stays plain SGD/RMSProp
            cycle = cfg.optimizer in ("adam", "adamw") or (cfg.optimizer in ("sgd", "rmsprop") and cfg.momentum > 0)
            main = sched.OneCycleLR(
                opt,
                max_lr=[g["lr"] for g in opt.param_groups],
                total_steps=rest,
                pct_start=0.25 if rest > 4 else min(0.75, 1.5 / rest),
                cycle_momentum=cycle,
            )
        elif cfg.schedule == "cosine":
            main = sched.CosineAnnealingLR(opt, T_max=rest)
        elif cfg.schedule == "step":
            main = sched.StepLR(opt, cfg.step_size * steps_per_epoch, cfg.gamma)
        elif cfg.schedule == "multistep":  # x gamma at 50 % and 75 % of training (He et al.'s CIFAR schedule)
            main = sched.MultiStepLR(opt, [rest // 2, rest * 3 // 4], cfg.gamma)
        elif cfg.schedule == "table":  # the table's lr of each epoch, as a factor of the optimiser's lr
            by_epoch = table_by_epoch(cfg.lr_table, cfg.epochs)
            main = sched.LambdaLR(opt, lambda s: by_epoch[min(s // steps_per_epoch, cfg.epochs - 1)] / cfg.lr)
        elif cfg.schedule == "exponential":
            main = sched.LambdaLR(opt, lambda s: cfg.gamma ** (s / steps_per_epoch))
        else:  # none, and plateau (which acts at epoch ends)
            main = sched.LambdaLR(opt, lambda s: 1.0)
        self.main = main
        if self.warmup:
            warm = sched.LinearLR(opt, start_factor=1e-3, total_iters=self.warmup)
            main = sched.SequentialLR(opt, [warm, main], milestones=[self.warmup])
        self.per_step = main
        self.plateau = (
            sched.ReduceLROnPlateau(opt, factor=cfg.gamma, patience=cfg.plateau_patience)
            if cfg.schedule == "plateau"
            else None
        )

    def step(self) -> None:
        self.per_step.step()

    def epoch_end(self, loss: float) -> None:
        if self.plateau is not None:
            self.plateau.step(loss)
            # the per-step schedule sets lr = base lr x 1 at every step: a cut must move its base
            self.main.base_lrs = [g["lr"] for g in self.plateau.optimizer.param_groups]

    def state_dict(self) -> dict:
        state = {"per_step": self.per_step.state_dict()}
        if self.plateau is not None:
            state["plateau"] = self.plateau.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
