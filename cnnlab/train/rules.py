"""The rules between settings: combinations that cannot work, and settings given where they do
nothing (a flag silently ignored would let a user believe in a run that did not happen). Each
rule is one line that says what was wrong and what to do."""

from __future__ import annotations

from collections.abc import Callable

from ..data.segmentation import is_segmentation
from ..errors import CnnlabError

# builder arguments that create_model and training decide themselves
NOT_BUILDER_ARGUMENTS = {
    "num_classes": "num_classes comes from the dataset",
    "weights": "give --weights instead",
    "pretrained": "give --weights imagenet instead",
}
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")
GAMMA_SCHEDULES = ("step", "multistep", "exponential", "plateau")


def check_together(cfg, default: Callable[[str], object]) -> None:
    """Raise CnnlabError for the first rule between settings that `cfg` breaks; `default(name)`
    is a setting's default (a setting away from it is one the user gave)."""
    given = {name for name in vars(cfg) if getattr(cfg, name) != default(name)}
    _check_data(cfg, given)
    _check_optimiser(cfg, given)
    _check_weights(cfg, given)
    _check_run_folder(cfg, given)
    _check_engine(cfg)
    _check_cuda_graph(cfg)


def _check_engine(cfg) -> None:
    """The NumPy engine: the CPU, its own optimisers, no compiler."""
    if cfg.engine != "numpy":
        return
    if cfg.optimizer not in ("sgd", "adam", "adamw"):
        raise CnnlabError(f"--engine numpy has the optimisers sgd, adam and adamw, not {cfg.optimizer}")
    if cfg.device not in ("auto", "cpu"):
        raise CnnlabError(f"--engine numpy runs on the CPU, not {cfg.device}: leave out --device or give --device cpu")
    if cfg.compile:
        raise CnnlabError("--engine numpy runs NumPy, which torch.compile cannot compile: leave out --compile")


def _check_cuda_graph(cfg) -> None:
    """A captured step replays the same kernels with the same numbers: what the host decides anew
    at every step (mixup's weight, a cycled momentum, an unfused optimiser's rate) cannot change."""
    if not cfg.cuda_graph:
        return
    if cfg.device == "cpu" or cfg.engine == "numpy":
        raise CnnlabError("--cuda-graph captures the training step on a CUDA GPU; it does nothing on the CPU")
    if cfg.compile in ("reduce-overhead", "max-autotune"):
        raise CnnlabError(
            f"--compile {cfg.compile} makes CUDA graphs of its own; with --cuda-graph give --compile (default) "
            "or --compile max-autotune-no-cudagraphs"
        )
    if cfg.optimizer not in ("sgd", "adam", "adamw"):
        raise CnnlabError(
            f"--cuda-graph captures the fused sgd, adam and adamw steps; {cfg.optimizer} reads its rate on the host"
        )
    if cfg.mixup:
        raise CnnlabError("--cuda-graph replays one step: mixup draws its weight on the host every step; drop one")
    if cfg.schedule == "onecycle" and (cfg.optimizer != "sgd" or cfg.momentum > 0):
        raise CnnlabError(
            "the onecycle schedule changes the momentum every step, which a captured step holds fixed: "
            "with --cuda-graph give another --schedule (or --momentum 0 with sgd)"
        )
    if cfg.dataset.startswith("folder:"):
        raise CnnlabError("--cuda-graph makes its batches from images held on the GPU, not from an image folder")


def _check_data(cfg, given: set[str]) -> None:
    table, folder, segmentation = (
        cfg.dataset.startswith("csv:"),
        cfg.dataset.startswith("folder:"),
        is_segmentation(cfg.dataset),
    )
    if table and (cfg.loss != "mse" or not cfg.target):
        raise CnnlabError("a csv: dataset is a regression: give --target COLUMN and --loss mse")
    if table and (cfg.model != "mlp" or cfg.whiten or cfg.augment):
        raise CnnlabError("a csv: dataset trains the mlp model, without --whiten or --augment")
    if not table and cfg.loss == "mse":
        raise CnnlabError(f"--loss mse is for a regression on a csv: dataset; {cfg.dataset} is classified (--loss ce)")
    if not table and cfg.target:
        raise CnnlabError(f"--target names the column of a csv: dataset to predict; {cfg.dataset} has none")
    for name in ("classes", "train_per_class", "test_per_class"):
        if name in given and (table or segmentation):
            what = "a csv: dataset has no classes" if table else "a segmentation dataset has every class in every image"
            raise CnnlabError(f"--{name.replace('_', '-')} picks images of a class; {what}")
    if len(set(cfg.classes)) < len(cfg.classes):
        twice = next(c for c in cfg.classes if cfg.classes.count(c) > 1)
        raise CnnlabError(f"class {twice!r} is named twice in --classes; name each once")
    if len(cfg.classes) == 1:
        raise CnnlabError(f"--classes {cfg.classes[0]}: one class is nothing to tell apart: give two or more")
    if cfg.mixup and (table or segmentation):
        raise CnnlabError(
            "mixup blends images and their class labels; it is for classification, not "
            f"{'regression' if table else 'segmentation'}"
        )
    if segmentation and "scale" in cfg.augment:
        raise CnnlabError(
            "segmentation masks move along with crop, translate and flip, not with scale; drop scale from --augment"
        )
    if folder and cfg.whiten:
        raise CnnlabError("ZCA whitening needs a dataset held in memory, not an image folder")
    if folder and cfg.augment:
        raise CnnlabError("image folders use random resized crops and flips; --augment is for in-memory datasets")
    if "on_bad_image" in given and not folder:
        raise CnnlabError(f"--on-bad-image is for image folders (folder:PATH); {cfg.dataset} has no image files")
    if "data_dir" in given and ":" in cfg.dataset:
        raise CnnlabError(f"--data-dir is where the named datasets are; {cfg.dataset} names its own path")
    if cfg.normalize != "standard" and table:
        raise CnnlabError(f"--normalize {cfg.normalize} is for images; a csv: dataset is standardised per column")


def _check_optimiser(cfg, given: set[str]) -> None:
    if cfg.schedule == "plateau" and cfg.gamma >= 1:
        raise CnnlabError(f"gamma must be a positive factor below 1 for plateau, got {cfg.gamma}")
    if "step_size" in given and cfg.schedule != "step":
        raise CnnlabError(f"--step-size is for the step schedule; this run's is {cfg.schedule}")
    if "gamma" in given and cfg.schedule not in GAMMA_SCHEDULES:
        raise CnnlabError(
            f"--gamma is for the step, multistep, exponential and plateau schedules; this run's is {cfg.schedule}"
        )
    if "plateau_patience" in given and cfg.schedule != "plateau":
        raise CnnlabError(f"--plateau-patience is for the plateau schedule; this run's is {cfg.schedule}")
    if cfg.schedule == "table" and not cfg.lr_table:
        raise CnnlabError("the table schedule takes its learning rates from --lr-table, e.g. 5e-4x2,2e-4x3,1e-5")
    if cfg.lr_table and cfg.schedule != "table":
        raise CnnlabError(f"--lr-table is for the table schedule; this run's is {cfg.schedule}: give --schedule table")
    if "sdlm_mu" in given and cfg.optimizer != "sdlm":
        raise CnnlabError(f"--sdlm-mu is for the sdlm optimiser; this run's is {cfg.optimizer}")
    if cfg.optimizer == "sdlm" and (cfg.model != "lenet5" or cfg.model_kwargs.get("head", "rbf") != "rbf"):
        raise CnnlabError(
            "sdlm is LeNet-5's own optimiser: it back-propagates second derivatives through LeNet-5's layers "
            "and RBF output; train lenet5, or choose another --optimizer"
        )
    if cfg.optimizer == "sdlm" and ":" in cfg.dataset:
        raise CnnlabError(f"sdlm estimates the curvature on examples held in memory; {cfg.dataset} is not")
    if "momentum" in given and cfg.optimizer not in MOMENTUM_OPTIMIZERS:
        hint = " (its beta1 plays that part)" if cfg.optimizer.startswith("adam") else ""
        raise CnnlabError(f"{cfg.optimizer} has no --momentum{hint}; momentum is for sgd and rmsprop")
    if "momentum" in given and cfg.momentum and cfg.schedule == "onecycle":
        raise CnnlabError(
            f"the onecycle schedule cycles the momentum 0.95 -> 0.85 -> 0.95 and does not use "
            f"--momentum {cfg.momentum}; give --momentum 0 for none, or another --schedule"
        )
    if "nesterov" in given and cfg.optimizer != "sgd":
        raise CnnlabError(f"--nesterov is for SGD; {cfg.optimizer} does not use it")


def _check_weights(cfg, given: set[str]) -> None:
    if cfg.strategy in ("feature-extractor", "fine-tune-top") and not cfg.weights:
        raise CnnlabError(f"the {cfg.strategy} strategy starts from trained weights: give --weights")
    if "strategy" in given and cfg.strategy != "from-scratch" and not cfg.weights:
        raise CnnlabError(
            "--strategy says what trains of --weights; without --weights everything trains from the "
            "builder's initialisation"
        )
    if cfg.weights and cfg.strategy != "from-scratch" and cfg.init != "paper":
        raise CnnlabError("--init re-initialises the weights that --weights loads; give one of them")
    if cfg.normalize == "center" and cfg.weights and cfg.strategy != "from-scratch":
        raise CnnlabError(
            "--normalize center changes the input the weights were trained on; leave it out when starting from weights"
        )
    for key in cfg.model_kwargs:
        if key in NOT_BUILDER_ARGUMENTS:
            raise CnnlabError(
                f"{key} = {cfg.model_kwargs[key]!r}: {NOT_BUILDER_ARGUMENTS[key]}; leave it out of --model-kwargs"
            )


def _check_run_folder(cfg, given: set[str]) -> None:
    if cfg.out is not None and not cfg.out.strip():
        raise CnnlabError(
            f"the run directory (--out) {cfg.out!r} is empty; give a folder name, or leave --out out to save nothing"
        )
    if cfg.resume and not cfg.out:
        raise CnnlabError("resume needs the run directory (--out) of the run to continue")
    if cfg.resume and cfg.overwrite:
        raise CnnlabError("--resume continues the run in --out and --overwrite replaces it; give one")
    if ("checkpoint_steps" in given or "checkpoint_minutes" in given) and not cfg.out:
        raise CnnlabError(
            "checkpoints are written into a run directory: give --out, or leave out "
            "--checkpoint-steps and --checkpoint-minutes"
        )
