"""Every setting of a training run, declared once.

A `TrainConfig` field carries its type and default, and in `setting(...)` its help text, the
values it may take and its role; the command line's flags, the reading of config files, what a
resumed run may change and the command lines the experiments print are all derived from it.
Adding a setting is one field here plus its use.
"""

from __future__ import annotations

import difflib
import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from ..data.augment import AUGMENTATIONS
from ..data.datasets import DATASETS
from ..errors import CnnlabError
from ..models.adapt import INITS, STRATEGIES
from .rules import check_together

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "sdlm")
SCHEDULES = ("none", "step", "multistep", "exponential", "plateau", "cosine", "onecycle", "table")
NORMALIZE = ("standard", "center", "lecun98")
# torch.compile's modes; "reduce-overhead" replays CUDA graphs (fewer kernel launches per step on CUDA)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ENGINES = ("torch", "numpy")
LENGTH_FREE_SCHEDULES = ("none", "step", "exponential", "plateau")  # a resumed run may train longer


def dataset_name(text: str, exists: bool = True) -> str:
    """A dataset cnnlab can read: a name, or folder:PATH, csv:PATH, voc:PATH (naming something
    that exists, unless `exists` is False)."""
    if text in DATASETS or text == "mnist-scenes":
        return text
    for prefix, what in (("folder:", "folder or zip file"), ("csv:", "CSV file"), ("voc:", "VOC2012 folder")):
        if text.startswith(prefix):
            if exists and not Path(text[len(prefix) :]).exists():
                raise CnnlabError(f"no such {what}: {text[len(prefix) :]}")
            return text
    close = difflib.get_close_matches(text, DATASETS, n=2)
    raise CnnlabError(
        f"unknown dataset {text!r}"
        + (f"; closest: {', '.join(close)}" if close else "")
        + f"; use {', '.join(DATASETS)}, mnist-scenes, voc:PATH or folder:PATH"
    )


def lr_table(text: str) -> str:
    """A table of learning rates by epoch, as `--lr-table` takes it: '5e-4x2,2e-4x3,1e-5' is 5e-4
    for 2 epochs, then 2e-4 for 3, then 1e-5 to the end (checked; see `lr_steps`)."""
    lr_steps(text)
    return text


def lr_steps(text: str) -> list[tuple[float, int | None]]:
    """The (lr, epochs) of each entry of an lr table; the last may leave its epochs out (the rest)."""
    steps = []
    entries = [e.strip() for e in text.split(",")]
    for k, entry in enumerate(entries):
        lr, x, epochs = entry.partition("x")
        try:
            value, count = float(lr), (int(epochs) if x else None)
        except ValueError:
            raise CnnlabError(f"lr table entry {entry!r} must look like 5e-4x2 (lr 5e-4 for 2 epochs)") from None
        if not (math.isfinite(value) and value > 0) or (count is not None and count < 1):
            raise CnnlabError(f"lr table entry {entry!r}: the lr must be positive and the epochs at least 1")
        if count is None and k < len(entries) - 1:
            raise CnnlabError(f"lr table entry {entry!r}: only the last entry may leave out its epochs")
        steps.append((value, count))
    return steps


def setting(
    default,
    help: str,
    *,
    choices: tuple | None = None,
    low: float | None = None,
    above: float | None = None,
    below: float | None = None,
    high: float | None = None,
    label: str | None = None,
    unit: str = "",
    parse=None,
    resumable: bool = False,
    restored: bool = True,
    in_files: bool = True,
    flag: dict | None = None,
):
    """A TrainConfig field: its default and help text, then what values it takes (`choices`, a
    range `low` <= v <= `high`, `above` < v < `below`; `parse` checks and converts text), how messages
    name it (`label`, `unit`), and its role: `resumable` (a resumed run may change it), `restored`
    (--resume takes it from the run's config.json), `in_files` (a config file may set it), and
    extra argparse keywords for its flag (`flag`)."""
    meta = dict(
        help=help,
        choices=choices,
        low=low,
        above=above,
        below=below,
        high=high,
        label=label,
        unit=unit,
        parse=parse,
        resumable=resumable,
        restored=restored,
        in_files=in_files,
        flag=flag or {},
    )
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a run depends on; saved (resolved) as config.json in the run directory."""

    model: str = setting(MISSING, "a model name from `cnnlab models`", in_files=False)
    dataset: str = setting(
        "mnist",
        f"{', '.join(DATASETS)}, folder:PATH (class sub-folders, or a zip of them), csv:PATH, or for segmentation "
        "mnist-scenes and voc:PATH (a VOC2012 folder)",
        parse=dataset_name,
    )
    epochs: int = setting(5, "passes over the training set", low=1, resumable=True)
    batch_size: int = setting(128, "examples per optimisation step (a torchrun job's global batch)", low=1)
    optimizer: str = setting("sgd", "the optimiser", choices=OPTIMIZERS)
    lr: float = setting(0.05, "(peak) learning rate", above=0, label="learning rate")
    momentum: float = setting(0.9, "momentum (SGD, RMSProp); 0 is plain mini-batch SGD", low=0, below=1)
    nesterov: bool = setting(True, "Nesterov momentum (SGD)")
    # LeCun et al. 1998, Appendix C: each weight's step is lr / (mu + its curvature)
    sdlm_mu: float = setting(0.02, "sdlm: the curvature's floor mu (the paper's 0.02)", above=0, label="sdlm mu")
    # decoupled for AdamW, added to the gradient otherwise
    weight_decay: float = setting(5e-4, "weight decay (decoupled for AdamW)", low=0)
    # penalties on weights (not biases): l1 * sum|w| + l2 * sum w^2; both = elastic net
    l1: float = setting(0.0, "L1 penalty on weights", low=0)
    l2: float = setting(0.0, "L2 penalty on weights (with --l1: elastic net)", low=0)
    schedule: str = setting("onecycle", "the learning-rate schedule", choices=SCHEDULES)
    lr_table: str | None = setting(
        None,
        "the table schedule's learning rates by epoch: 5e-4x2,2e-4x3,1e-5 is 5e-4 for 2 epochs, 2e-4 for 3, then 1e-5",
        parse=lr_table,
    )
    step_size: int = setting(30, "epochs between drops of the step schedule", low=1, unit="epoch")
    # step/multistep/plateau factor; "exponential" multiplies by it every epoch
    gamma: float = setting(0.1, "factor of step, multistep, exponential, plateau", above=0)
    plateau_patience: int = setting(
        2, "epochs without a lower training loss before plateau cuts the lr", low=1, unit="epoch"
    )
    warmup_epochs: float = setting(0.0, "linear learning-rate warm-up from lr/1000, in epochs", low=0)
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy", low=0, below=1)
    mixup: float = setting(
        0.0,
        "blend image pairs and their labels, lam ~ Beta(ALPHA, ALPHA) (Zhang et al.: 0.2-1; 0: off)",
        low=0,
        label="mixup alpha",
        flag={"metavar": "ALPHA"},
    )
    # "standard": (x - mean) / std per channel on the 0-1 pixel scale; "center": AlexNet's (Section
    # 2), the raw 0-255 values with only the dataset's per-channel mean taken off (std 1/255);
    # "lecun98": LeCun et al. 1998 (Section II.A), background -0.1 and ink 1.175
    normalize: str = setting(
        "standard",
        "standard: per-channel mean and std (default); center: AlexNet's raw 0-255 values less the mean; "
        "lecun98: LeNet-5's, background -0.1 and ink 1.175",
        choices=NORMALIZE,
    )
    whiten: bool = setting(False, "ZCA-whiten the inputs (fitted on the training set)")
    dropout: float | None = setting(None, "rate of every dropout layer", low=0, below=1)
    init: str = setting("paper", "weight initialisation (paper: the builder's own)", choices=INITS)
    clip_grad_norm: float | None = setting(None, "clip the gradient's norm to this", above=0)
    augment: tuple[str, ...] = setting(
        (), f"comma-separated: {', '.join(AUGMENTATIONS)} ('' for none)", choices=AUGMENTATIONS, label="augmentation"
    )
    seed: int = setting(
        0, "seed of every random draw (initialisation, order, augmentation, dropout)", low=0, high=2**63 - 1
    )
    device: str = setting("auto", "cpu, cuda, cuda:N or auto (default)", resumable=True)
    amp: bool = setting(True, "on CUDA: bf16 autocast and channels_last (no effect on the CPU)", resumable=True)
    compile: bool | str = setting(
        False,
        f"torch.compile the model for training; MODE: {', '.join(COMPILE_MODES)} (default: default; "
        "reduce-overhead replays CUDA graphs)",
        choices=COMPILE_MODES,
        resumable=True,
        flag={"nargs": "?", "const": "default", "metavar": "MODE"},
    )
    cuda_graph: bool = setting(
        False,
        "on CUDA: capture the whole training step (augmentation, forward, backward, optimiser) as one CUDA graph "
        "and replay it for every full batch (sgd, adam or adamw; data held in memory; one process)",
        resumable=True,
    )
    engine: str = setting(
        "torch",
        "torch: PyTorch's autograd; numpy: the forward and backward passes and the optimiser step by hand in "
        "NumPy (cnnlab.scratch; CPU; sgd, adam or adamw)",
        choices=ENGINES,
    )
    max_steps: int | None = setting(
        None, "stop after N optimisation steps (quick check)", low=1, resumable=True, restored=False
    )
    overfit_batch: bool = setting(False, "train on one batch only; the loss must go to ~0")
    layer_stats: bool = setting(
        False,
        "per-layer activation and gradient statistics after every epoch (layer_stats.jsonl)",
        resumable=True,
    )
    loss: str = setting(
        "ce", "ce: cross-entropy (classification); mse: squared error (regression)", choices=("ce", "mse")
    )
    target: str | None = setting(None, "the column to predict, for csv:PATH")
    out: str | None = setting(
        None,
        "run directory (config.json, metrics.jsonl, *.safetensors)",
        resumable=True,
        restored=False,
        in_files=False,
    )
    resume: bool = setting(
        False,
        "continue the run in --out from its checkpoint, with its settings (flags given win)",
        resumable=True,
        restored=False,
        in_files=False,
    )
    overwrite: bool = setting(
        False,
        "replace the run already in --out (without it, a new run refuses to overwrite one)",
        resumable=True,
        restored=False,
        in_files=False,
    )
    # checkpoint.safetensors is rewritten after every epoch, and also every N steps and/or every
    # M minutes inside an epoch when set (a killed run loses at most that much work)
    checkpoint_steps: int | None = setting(
        None,
        "also write the resumable checkpoint every N steps (default: after every epoch only)",
        low=1,
        resumable=True,
    )
    checkpoint_minutes: float | None = setting(None, "also write it every M minutes", above=0, resumable=True)
    on_bad_image: str = setting(
        "fail",
        "an unreadable file in an image folder: stop naming it (default), or skip it",
        choices=("fail", "skip"),
        label="on-bad-image",
        resumable=True,
    )
    # transfer learning: start from `weights` (create_model's: imagenet, a file, a run); the strategy
    # says what trains (module names up to `freeze_until` stay frozen; the head's lr is x head_lr_mult)
    weights: str | None = setting(None, "start from these weights: imagenet, a .pth/.safetensors file or a run")
    strategy: str = setting(
        "fine-tune-all",
        "what trains: a new classifier only (feature-extractor), also the top layers, everything "
        "(fine-tune-all, the default), or from-scratch ignoring --weights",
        choices=STRATEGIES,
    )
    freeze_until: str | None = setting(None, "keep every layer up to and including this one fixed (e.g. layer3)")
    head_lr_mult: float = setting(1.0, "the classifier's lr is the lr times this", above=0, label="head lr multiplier")
    classes: tuple[str, ...] = setting((), "comma-separated class names: train and test on these only")
    train_per_class: int | None = setting(None, "the first N training images of each class", low=1)
    test_per_class: int | None = setting(None, "evaluate on the first N test images of each class", low=1)
    # the last images of each class, so the best model and early stopping go by it, not the test set
    val_split: float = setting(
        0.0,
        "hold out this fraction of the training images (the last of each class) for validation: the best "
        "model and early stopping go by it instead of the test set",
        low=0,
        below=1,
        label="validation split",
    )
    early_stop: int | None = setting(
        None,
        "stop after this many epochs without a better model (validation, else test)",
        low=1,
        unit="epoch",
        label="early stop patience",
        resumable=True,
        flag={"metavar": "PATIENCE"},
    )
    data_dir: str | None = setting(
        None, "dataset root (default: $CNNLAB_DATA, else ~/.cache/cnnlab/data)", resumable=True
    )
    model_kwargs: dict = setting(
        {},
        "arguments of the model's builder, e.g. activation=tanh width=0.5 (values are JSON or text)",
        flag={"nargs": "+", "metavar": "KEY=VALUE"},
    )

    def __post_init__(self):
        for name in ("augment", "classes"):  # "crop,flip" and lists, as the CLI and config files give them
            value = getattr(self, name)
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list):
                setattr(self, name, tuple(value))

    @staticmethod
    def default(name: str):
        """The default of setting `name` ("" for the model, which has none)."""
        f = TrainConfig.__dataclass_fields__[name]
        if f.default is not MISSING:
            return f.default
        return f.default_factory() if f.default_factory is not MISSING else ""

    @staticmethod
    def kind(name: str) -> type:
        """The type of setting `name`'s values: int, float, str, bool, tuple or dict ("int | None": int;
        compile, "bool | str": bool, its modes aside)."""
        hint = _hints()[name]
        origin = typing.get_origin(hint)
        if origin is tuple or hint is dict:
            return origin or hint
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if args else hint

    @staticmethod
    def fits_type(name: str, value) -> bool:
        """Whether `value` has the type of setting `name` (an int where a float goes; None only where
        the default is None; a torch.compile mode or a bool for compile; "a,b" for a tuple of names)."""
        default = TrainConfig.default(name)
        if name == "compile" and isinstance(value, str) or value is None and default is None:
            return True
        kind = TrainConfig.kind(name)
        want = {float: (int, float), tuple: (list, tuple, str)}.get(kind, kind)
        return isinstance(value, bool) == (kind is bool) and isinstance(value, want)

    @staticmethod
    def example(name: str):
        """A value of setting `name`'s type, for messages: its default, or one for optional settings."""
        default = TrainConfig.default(name)
        if default is not None:
            return default
        return {int: 1, float: 0.5, str: "text"}[TrainConfig.kind(name)]

    def check(self) -> None:
        """Raise CnnlabError naming the first setting that cannot work."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not self.fits_type(f.name, value):
                raise CnnlabError(f"{f.name} = {value!r} has the wrong type; e.g. {f.name} = {self.example(f.name)!r}")
            if message := problem(f.name, value):
                raise CnnlabError(message)
        dataset_name(self.dataset, exists=False)  # a file that is not there is named when it is read
        if self.lr_table is not None:
            lr_table(self.lr_table)
        check_together(self, TrainConfig.default)


def _hints() -> dict:
    return typing.get_type_hints(TrainConfig)


def problem(name: str, value, named: bool = True) -> str | None:
    """What is wrong with `value` for setting `name` by its declaration, in words ("epochs must be
    at least 1, got 0"; without the setting's name where the command line names the flag), or
    None. Types are checked by `TrainConfig.fits_type`."""
    spec = TrainConfig.__dataclass_fields__[name].metadata
    label = spec["label"] or name.replace("_", " ")
    if value is None or isinstance(value, (bool, dict)):
        return None
    if isinstance(value, tuple) and spec["choices"] is not None:
        bad = [v for v in value if v not in spec["choices"]]
        return f"unknown {label} {bad[0]!r}; choose from {', '.join(spec['choices'])}" if bad else None
    rule = rule_broken(spec, value)
    return (f"{label} {rule}" if named else rule) if rule else None


def rule_broken(spec, value) -> str | None:
    """The rule a value breaks ("must be at least 1, got 0"), or None."""
    low, above, below, unit = spec["low"], spec["above"], spec["below"], spec["unit"]
    if spec["choices"] is not None:
        return None if value in spec["choices"] else f"must be one of {', '.join(spec['choices'])}, got {value!r}"
    if not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if low == 0 and below == 1 and not 0 <= value < 1:
        return f"must be a fraction in [0, 1), got {value}"
    if low is not None and value < low:
        what = "must not be negative" if low == 0 else f"must be at least {low}{f' {unit}' if unit else ''}"
        return f"{what}, got {value}"
    if above is not None and not value > above:
        return f"must be positive, got {value}"
    if spec.get("high") is not None and value > spec["high"]:
        return f"must be at most {spec['high']}, got {value}"
    return None


def setting_fields() -> list:
    """The declared settings, in order."""
    return list(fields(TrainConfig))


def flag_tokens(name: str, value) -> list[str]:
    """The command-line words that set setting `name` to `value`: the inverse of the flags
    `cnnlab train` takes (["--lr", "0.1"], ["--no-nesterov"], ["--augment", "'crop,flip'"])."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        if value:
            return [flag]
        return [f"--no-{name.replace('_', '-')}"] if TrainConfig.default(name) is True else []
    if isinstance(value, tuple):
        return [flag, f"'{','.join(value)}'"]
    return [flag, str(value)]
