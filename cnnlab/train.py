"""Training and evaluation. Small datasets live on the training device as one uint8 tensor;
batches are normalised (and augmented) there, so no DataLoader or PIL sits in the loop.

Read top to bottom: TrainConfig, the default recipes, the data on the device, the optimiser,
schedule and regularisers, train(), evaluate(), load_model().
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import __version__
from .checkpoint import (append_text, atomic_file, atomic_save, load, pack_training_state, save_figure,
                         unpack_training_state, write_error)
from .data import IMAGENET_NORMALIZATION, ImageFolder, Split, collate_readable, load_dataset, split_off, subset
from .errors import CnnlabError, DatasetError, TrainingDiverged, TrainingInterrupted, WeightsError, WriteError
from .registry import create_model, get_model_info
from .segmentation import IGNORE, confusion, is_segmentation, load_segmentation, scores
from .weights import check_state_dict, load_into, weights_kind

# Per-channel mean and std of the training images, after scaling to [0, 1].
NORMALIZATION = {"mnist": ((0.1307,), (0.3081,)), "fashion-mnist": ((0.2860,), (0.3530,)),
                 "mnist-scenes": ((0.1004,), (0.2665,)),
                 "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                 "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "multistep", "exponential", "plateau", "cosine", "onecycle")
INITS = ("paper", "normal", "xavier", "he")
NORMALIZE = ("standard", "center")
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601: grey from RGB
# torch.compile's modes; "reduce-overhead" replays CUDA graphs (fewer kernel launches per step on CUDA)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# crop: 4-pixel padded random crops; translate: shifts up to 10 % of the size; flip: horizontal
# mirror; jitter: brightness, contrast, saturation x U(0.6, 1.4); noise: Gaussian, sigma 0.05;
# scale: VGG-style scale jittering (zoom x U(1, 1.3), random position); pca: AlexNet's PCA colour
# augmentation (alpha ~ N(0, 0.1) along the RGB principal components).
AUGMENTATIONS = ("crop", "translate", "flip", "rotate", "jitter", "noise", "scale", "pca", "cutout")
ROTATE_DEGREES = 15  # "rotate": uniform in +-15 degrees
# The lectures' transfer-learning choices: train only a new classifier on fixed features; also
# the top layers; everything; or ignore the weights and train from a fresh initialisation
STRATEGIES = ("feature-extractor", "fine-tune-top", "fine-tune-all", "from-scratch")


@dataclass
class TrainConfig:
    """Everything a run depends on; saved (resolved) as config.json in the run directory."""

    model: str
    dataset: str = "mnist"
    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # decoupled for AdamW, added to the gradient otherwise
    l1: float = 0.0  # penalties on weights (not biases): l1 * sum|w| + l2 * sum w^2; both = elastic net
    l2: float = 0.0
    schedule: str = "onecycle"
    step_size: int = 30  # epochs between x gamma for "step"; "multistep" drops at 50 % and 75 %
    gamma: float = 0.1  # step/multistep/plateau factor; "exponential" multiplies by it every epoch
    warmup_epochs: float = 0.0  # linear warm-up from lr/1000
    label_smoothing: float = 0.0
    mixup: float = 0.0  # alpha of mixup's Beta(alpha, alpha) blend of image pairs (0: off; the paper: 0.2-1)
    # "standard": (x - mean) / std per channel on the 0-1 pixel scale; "center": AlexNet's (Section
    # 2), the raw 0-255 values with only the dataset's per-channel mean taken off (std 1/255)
    normalize: str = "standard"
    whiten: bool = False  # ZCA whitening of the inputs (fitted on the training set) after normalisation
    dropout: float | None = None  # overrides every Dropout layer's rate
    init: str = "paper"  # the builders' own (the paper's where it says), or normal / xavier / he
    clip_grad_norm: float | None = None
    augment: tuple[str, ...] = ()
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # on CUDA: bf16 autocast and channels_last (no effect on the CPU)
    # torch.compile the training step's model: False, True (= "default") or one of COMPILE_MODES
    compile: bool | str = False
    max_steps: int | None = None  # stop after this many optimisation steps (a quick end-to-end check)
    overfit_batch: bool = False  # train on the first batch only, every step: the loss must go to ~0
    layer_stats: bool = False  # per-layer activation and gradient statistics after every epoch
    loss: str = "ce"  # "ce": cross-entropy (classification); "mse": squared error (regression, csv: data)
    target: str | None = None  # the column to predict, for dataset csv:PATH
    out: str | None = None
    resume: bool = False
    overwrite: bool = False  # replace a run already in `out` (otherwise refused: give resume or another out)
    # checkpoint.safetensors is rewritten after every epoch, and also every N steps and/or every
    # M minutes inside an epoch when set (a killed run loses at most that much work)
    checkpoint_steps: int | None = None
    checkpoint_minutes: float | None = None
    on_bad_image: str = "fail"  # an unreadable file in an image folder: "fail" (name it and stop) or "skip"
    # transfer learning: start from `weights` (create_model's: imagenet, a file, a run); the strategy
    # says what trains (module names up to `freeze_until` stay frozen; the head's lr is x head_lr_mult)
    weights: str | None = None
    strategy: str = "fine-tune-all"
    freeze_until: str | None = None
    head_lr_mult: float = 1.0
    classes: tuple[str, ...] = ()  # train and test on these classes only (names), relabelled 0..k-1
    train_per_class: int | None = None  # the first N training images of each class (few labels)
    test_per_class: int | None = None  # evaluate on the first N test images of each class (quick checks)
    # hold out this fraction of the training set (the last images of each class) as a validation
    # set: the best model and early stopping then go by it instead of by the test set
    val_split: float = 0.0
    early_stop: int | None = None  # stop after this many epochs without a better best model (patience)
    data_dir: str | None = None
    model_kwargs: dict = field(default_factory=dict)

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
        return f.default if f.default is not MISSING else f.default_factory() if f.default_factory is not MISSING \
            else ""

    @staticmethod
    def fits_type(name: str, value) -> bool:
        """Whether `value` has the type of setting `name` (an int where a float goes; None only where
        the default is None; a torch.compile mode or a bool for compile; "a,b" for a tuple of names)."""
        default = TrainConfig.default(name)
        if name == "compile" and isinstance(value, str) or value is None and default is None:
            return True
        if default is None:  # optional settings: the type their annotation names ("int | None")
            want = {"int": int, "float": (int, float), "str": str}[TrainConfig._optional(name)]
        else:
            want = (int, float) if isinstance(default, float) else (list, tuple, str) if isinstance(default, tuple) \
                else type(default)
        return isinstance(value, bool) == isinstance(default, bool) and isinstance(value, want)

    @staticmethod
    def example(name: str):
        """A value of setting `name`'s type, for messages: its default, or one for optional settings."""
        default = TrainConfig.default(name)
        if default is not None:
            return default
        return {"int": 1, "float": 0.5, "str": "text"}[TrainConfig._optional(name)]

    @staticmethod
    def _optional(name: str) -> str:
        """The type of an optional setting, from its annotation: "int" of "int | None"."""
        return TrainConfig.__dataclass_fields__[name].type.split("|")[0].strip()

    def check(self) -> None:
        """Raise CnnlabError naming the first setting that cannot work."""
        for f in fields(self):
            if not self.fits_type(f.name, getattr(self, f.name)):
                raise CnnlabError(f"{f.name} = {getattr(self, f.name)!r} has the wrong type; e.g. "
                                  f"{f.name} = {self.example(f.name)!r}")
        if self.epochs < 1:
            raise CnnlabError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise CnnlabError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise CnnlabError(f"learning rate must be a positive number, got {self.lr}")
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("init", INITS)):
            if getattr(self, name) not in choices:
                raise CnnlabError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        bad = [a for a in self.augment if a not in AUGMENTATIONS]
        if bad:
            raise CnnlabError(f"unknown augmentation {bad[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
        if not 0 <= self.label_smoothing < 1:
            raise CnnlabError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise CnnlabError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.momentum < 1:  # at 1 or more the velocity never decays and the run diverges
            raise CnnlabError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.step_size < 1:
            raise CnnlabError(f"step size must be at least 1 epoch, got {self.step_size}")
        if not (self.gamma > 0 and math.isfinite(self.gamma)) or self.schedule == "plateau" and self.gamma >= 1:
            raise CnnlabError(f"gamma must be a positive factor{' below 1 for plateau' * (self.schedule == 'plateau')}, "
                              f"got {self.gamma}")
        for name in ("weight_decay", "l1", "l2", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise CnnlabError(f"{name.replace('_', ' ')} must not be negative, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise CnnlabError(f"max steps must be at least 1, got {self.max_steps}")
        if self.loss not in ("ce", "mse"):
            raise CnnlabError(f"loss must be ce or mse, got {self.loss!r}")
        if self.dataset.startswith("csv:") and (self.loss != "mse" or not self.target):
            raise CnnlabError("a csv: dataset is a regression: give --target COLUMN and --loss mse")
        if self.checkpoint_steps is not None and self.checkpoint_steps < 1:
            raise CnnlabError(f"checkpoint steps must be at least 1, got {self.checkpoint_steps}")
        if self.checkpoint_minutes is not None and not self.checkpoint_minutes > 0:
            raise CnnlabError(f"checkpoint minutes must be positive, got {self.checkpoint_minutes}")
        if self.strategy not in STRATEGIES:
            raise CnnlabError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.strategy in ("feature-extractor", "fine-tune-top") and not self.weights:
            raise CnnlabError(f"the {self.strategy} strategy starts from trained weights: give --weights")
        if not self.head_lr_mult > 0:
            raise CnnlabError(f"head lr multiplier must be positive, got {self.head_lr_mult}")
        for name in ("train_per_class", "test_per_class"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise CnnlabError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if not (self.mixup >= 0 and math.isfinite(self.mixup)):
            raise CnnlabError(f"mixup alpha must not be negative, got {self.mixup}")
        if self.mixup and (self.dataset.startswith("csv:") or is_segmentation(self.dataset)):
            raise CnnlabError("mixup blends images and their class labels; it is for classification, not "
                              f"{'regression' if self.dataset.startswith('csv:') else 'segmentation'}")
        if not 0 <= self.val_split < 1:
            raise CnnlabError(f"validation split must be a fraction in [0, 1), got {self.val_split}")
        if self.early_stop is not None and self.early_stop < 1:
            raise CnnlabError(f"early stop patience must be at least 1 epoch, got {self.early_stop}")
        if self.normalize not in NORMALIZE:
            raise CnnlabError(f"normalize must be standard or center, got {self.normalize!r}")
        if self.normalize == "center" and self.dataset.startswith("csv:"):
            raise CnnlabError("--normalize center is for images; a csv: dataset is standardised per column")
        if self.normalize == "center" and self.weights and self.strategy != "from-scratch":
            raise CnnlabError("--normalize center changes the input the weights were trained on; leave it out "
                              "when starting from weights")
        if not isinstance(self.compile, bool) and self.compile not in COMPILE_MODES:
            raise CnnlabError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.on_bad_image not in ("fail", "skip"):
            raise CnnlabError(f"on-bad-image must be fail or skip, got {self.on_bad_image!r}")
        if self.out is not None and not self.out.strip():
            raise CnnlabError(f"the run directory (--out) {self.out!r} is empty; give a folder name, or leave --out "
                              "out to save nothing")
        if self.resume and not self.out:
            raise CnnlabError("resume needs the run directory (--out) of the run to continue")
        if self.resume and self.overwrite:
            raise CnnlabError("--resume continues the run in --out and --overwrite replaces it; give one")


# Default recipes (model, dataset) -> settings; explicit settings win.
RECIPES = {
    # 99.1-99.2 % in two epochs (seeds 0-2): AdamW one-cycle with label smoothing, chosen in a sweep
    # against SGD and Adam at 2 and 3 epochs (bench/RESULTS.md)
    ("lenet5_modern", "mnist"): dict(epochs=2, batch_size=128, optimizer="adamw", lr=6e-3, weight_decay=0.05,
                                     label_smoothing=0.1, schedule="onecycle"),
    # RBF outputs are negated squared distances (tens to hundreds): a 10x smaller step than for
    # a linear head keeps the first updates from blowing up
    ("lenet5", "mnist"): dict(epochs=6, batch_size=128, optimizer="sgd", lr=0.005, schedule="onecycle"),
    ("mlp", "mnist"): dict(epochs=5, batch_size=128, optimizer="sgd", lr=0.05, schedule="onecycle"),
    # He et al. 2015, Section 4.2: batch 128, SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided
    # by 10 at 32k and 48k of 64k iterations (164 epochs), 4-pixel-padded crops and flips
    **{(f"{kind}{depth}", "cifar10"): dict(epochs=164, batch_size=128, optimizer="sgd", lr=0.1, nesterov=False,
                                           weight_decay=1e-4, schedule="multistep", augment=("crop", "flip"))
       for kind in ("resnet", "plain") for depth in (20, 32, 44, 56, 110)},
    # MNIST scenes (64x64, grey, 11 classes) on a CPU: the FCNs at 1/16 of their channels, the
    # dilated front end at 1/8 (fc6/fc7 at 1/16: they run at 1/8 resolution; at 1/16 the front end
    # was too weak for the context module to build on), "same" padding instead of
    # FCN's 100-pixel input padding, batch norm after every VGG convolution (no ImageNet weights to
    # start from); AdamW one-cycle, no flips (a mirrored digit is another shape)
    **{(name, "mnist-scenes"): dict(epochs=4, batch_size=32, optimizer="adamw", lr=3e-3, weight_decay=1e-4,
                                    schedule="onecycle", model_kwargs={"width": 0.0625, "in_channels": 1, "pad100": False,
                                                                      "batch_norm": True})
       for name in ("fcn32s", "fcn16s", "fcn8s")},
    ("dilated_frontend", "mnist-scenes"): dict(epochs=4, batch_size=32, optimizer="adamw", lr=3e-3, weight_decay=1e-4,
                                               schedule="onecycle",
                                               model_kwargs={"width": 0.125, "fc_width": 0.0625, "in_channels": 1,
                                                             "batch_norm": True}),
}


# Regression on a numeric table (the lectures' temperature predictor): Adam on the squared error.
TABLE_RECIPE = dict(loss="mse", optimizer="adam", lr=3e-3, weight_decay=0.0, schedule="cosine", epochs=30,
                    batch_size=32)


def recipe(model: str, dataset: str, **overrides) -> TrainConfig:
    """The default recipe for a model and dataset, with `overrides` (None values ignored) on top."""
    base = TABLE_RECIPE if dataset.startswith("csv:") else RECIPES.get((model, dataset), {})
    settings = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    if "model_kwargs" in base and "model_kwargs" in overrides:  # builder arguments add up, the given win
        settings["model_kwargs"] = {**base["model_kwargs"], **(overrides["model_kwargs"] or {})}
    return TrainConfig(model=model, dataset=dataset, **settings)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CnnlabError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type not in ("cpu", "cuda"):  # mps, xla, ...: PyTorch names them, cnnlab is not built for them
        raise CnnlabError(f"device {name!r} is not supported (cnnlab runs on CPUs and CUDA GPUs); "
                          "use cpu, cuda, cuda:N or auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnlabError("device cuda was asked for but CUDA is not available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise CnnlabError(f"device {name} was asked for but this machine has {count} GPU{'s' * (count != 1)} "
                          f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    return device


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    started_here: bool = False


def setup_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK): NCCL on GPUs,
    gloo on CPUs. Each process takes its own GPU."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), pick_device(device_name)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), started), device


def _all_reduce(t: Tensor, d: Dist) -> Tensor:
    if d.world > 1:
        import torch.distributed as dist
        dist.all_reduce(t)
    return t


def adapt_images(images: Tensor, size: tuple[int, ...]) -> Tensor:
    """uint8 images made to fit a model of another input (transfer learning): colour to grey
    (ITU-R 601 luma) or grey to colour, and larger images resized down (antialiased)."""
    c, h, w = images.shape[1:]
    if c == 3 and size[0] == 1:
        luma = torch.tensor(LUMA).view(1, 3, 1, 1)
        images = (images.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    elif c == 1 and size[0] == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    elif c != size[0]:
        raise CnnlabError(f"the model takes {size[0]} channels but the images have {c}")
    if h > size[1] and w > size[2]:
        images = F.interpolate(images.float(), size=tuple(size[1:]), mode="bilinear", antialias=True,
                               align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return images


def channel_normalization(split: Split, size: tuple[int, ...], mean, std) -> tuple[list, list]:
    """`mean` and `std`, unless the images are converted to the model's number of channels: then
    the converted training images' own per-channel statistics."""
    if len(mean) == size[0]:
        return list(mean), list(std)
    sample = adapt_images(split.images[:10_000], size).float().div_(255)
    return sample.mean((0, 2, 3)).tolist(), sample.std((0, 2, 3)).tolist()


def grey_normalization(size: tuple[int, ...], mean, std) -> tuple[list, list]:
    """Photos for a grey network (size[0] == 1) become ITU-R 601 luma: the luma of the colour mean
    and std (for the std exact when the channels move together, as they nearly do); else as given."""
    if size[0] == 1 and len(mean) == 3:
        return [sum(k * v for k, v in zip(LUMA, mean))], [sum(k * v for k, v in zip(LUMA, std))]
    return list(mean), list(std)


def fits_by_padding(h: int, w: int, size: tuple[int, ...]) -> bool:
    """Whether h x w images reach the model's input size by zero padding: by at most 8 pixels,
    the same on both sides (LeNet-5: 28x28 digits in 32x32). Smaller ones are resized up."""
    dh, dw = size[-2] - h, size[-1] - w
    return 0 <= dh <= 8 and 0 <= dw <= 8 and not dh % 2 and not dw % 2


class DeviceData:
    """A split held on the device as uint8 at the model's input size; batches come out normalised
    (and augmented, and ZCA-whitened if asked) as float32. Images up to 8 pixels smaller are
    zero-padded (LeNet-5: MNIST's 28x28 digits in 32x32, as in the paper); much smaller ones are
    kept at their size and resized up in every batch (bilinear: CIFAR-10 into a 224-pixel
    ImageNet network), so the dataset takes no more memory than its own pixels."""

    def __init__(self, split: Split, size: tuple[int, ...], mean, std, device: torch.device):
        images = adapt_images(split.images, size)
        c, h, w = images.shape[1:]
        self.resize: tuple[int, int] | None = None
        if (h, w) != tuple(size[1:]):
            dh, dw = size[1] - h, size[2] - w
            if dh < 0 or dw < 0:
                raise CnnlabError(f"the model takes {size[1]}x{size[2]} images but the data is {h}x{w}")
            if fits_by_padding(h, w, size):
                images = F.pad(images, (dw // 2, dw // 2, dh // 2, dh // 2))
            else:
                self.resize = (size[1], size[2])
        self.images = images.to(device)
        self.labels = split.labels.to(device)
        self.classes = split.classes
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.zca: tuple[Tensor, Tensor] | None = None
        self.pca: tuple[Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def _sample(self, n: int = 10_000) -> Tensor:
        idx = torch.linspace(0, len(self) - 1, min(n, len(self)), device=self.labels.device).long()
        return self.images[idx].float().div_(255)

    def fit_zca(self, eps: float = 1e-2) -> tuple[Tensor, Tensor]:
        """ZCA whitening W = U (S + eps)^-1/2 U^T of the normalised training images."""
        if self.resize:
            h, w = self.images.shape[2:]
            raise CnnlabError(f"ZCA whitening needs the images at the model's input size; these {h}x{w} images "
                              f"are resized up to {self.resize[0]}x{self.resize[1]} batch by batch; drop --whiten")
        x = ((self._sample() - self.mean) / self.std).flatten(1).double()
        mu = x.mean(0)
        cov = (x - mu).T @ (x - mu) / len(x)
        s, u = torch.linalg.eigh(cov)
        self.zca = (mu.float(), (u @ torch.diag((s.clamp_min(0) + eps).rsqrt()) @ u.T).float())
        return self.zca

    def fit_pca(self) -> tuple[Tensor, Tensor]:
        """Eigenvalues and eigenvectors of the RGB covariance over the training pixels (AlexNet §4.1)."""
        if self.images.shape[1] != 3:
            raise CnnlabError("PCA colour augmentation needs RGB images")
        pixels = self._sample(2_000).permute(0, 2, 3, 1).reshape(-1, 3).double()
        vals, vecs = torch.linalg.eigh(torch.cov(pixels.T))
        self.pca = (vals.float(), vecs.float())
        return self.pca

    def batch(self, idx: Tensor, augment: tuple[str, ...] = (), generator: torch.Generator | None = None):
        """Images (normalised, augmented) and labels; segmentation masks move with their images
        (crops, translations, flips; the uncovered border is void, IGNORE)."""
        x = self.images[idx].float().div_(255)
        y = self.labels[idx]
        n, c, h, w = x.shape
        dev = x.device
        masks = y.ndim == 3

        def rand(*shape):
            return torch.rand(*shape, device=dev, generator=generator)

        if "scale" in augment:  # zoom in by U(1, 1.3) at a random position, bilinear
            zoom = 1 / (1 + 0.3 * rand(n))
            shift = (1 - zoom).unsqueeze(1) * (2 * rand(n, 2) - 1)
            theta = torch.zeros(n, 2, 3, device=dev)
            theta[:, 0, 0], theta[:, 1, 1] = zoom, zoom
            theta[:, :, 2] = shift
            x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
        if "rotate" in augment:  # about the centre, by U(-15, 15) degrees, bilinear; the corners fill with black
            angle = (2 * rand(n) - 1) * math.radians(ROTATE_DEGREES)
            cos, sin = angle.cos(), angle.sin()
            theta = torch.zeros(n, 2, 3, device=dev)  # the rotation in pixels, in affine_grid's [-1, 1] units
            theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin * h / w, sin * w / h, cos
            grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
            x = F.grid_sample(x, grid, align_corners=False)
            if masks:  # nearest class; what the rotation brings in from outside is void
                inside = F.grid_sample(torch.ones(n, 1, h, w, device=dev), grid, mode="nearest", align_corners=False)
                y = F.grid_sample(y.unsqueeze(1).float(), grid, mode="nearest", align_corners=False)
                y = torch.where(inside > 0, y, float(IGNORE)).squeeze(1).to(torch.uint8)
        for name, pad in (("crop", 4), ("translate", max(1, h // 10))):
            if name in augment:  # a random window of the zero-padded image, one offset per image
                padded = F.pad(x, (pad, pad, pad, pad))
                dy = torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), device=dev, generator=generator)
                dx = torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), device=dev, generator=generator)
                rows = dy + torch.arange(h, device=dev).view(1, 1, h, 1)
                cols = dx + torch.arange(w, device=dev).view(1, 1, 1, w)
                x = padded[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1),
                           rows, cols]
                if masks:
                    y = F.pad(y, (pad, pad, pad, pad), value=IGNORE)[torch.arange(n, device=dev).view(n, 1, 1),
                                                                     rows[:, 0], cols[:, 0]]
        if "flip" in augment:
            flip = rand(n) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            if masks:
                y = torch.where(flip.view(-1, 1, 1), y.flip(2), y)
        if "jitter" in augment:
            b, k, sat = (0.6 + 0.8 * rand(n, 1, 1, 1) for _ in range(3))
            x = x * b
            x = (x - x.mean((1, 2, 3), keepdim=True)) * k + x.mean((1, 2, 3), keepdim=True)
            if c == 3:
                gray = (x * torch.tensor(LUMA, device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
                x = gray + sat * (x - gray)
            x = x.clamp(0, 1)
        if "pca" in augment:
            vals, vecs = self.pca or self.fit_pca()
            alpha = torch.randn(n, 3, device=dev, generator=generator) * 0.1
            x = x + ((alpha * vals) @ vecs.T).view(n, 3, 1, 1)
        if "noise" in augment:
            x = x + 0.05 * torch.randn(x.shape, device=dev, generator=generator)
        if self.resize:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        if self.zca is not None:
            mu, whiten = self.zca
            x = ((x.flatten(1) - mu) @ whiten).view(n, c, h, w)
        if "cutout" in augment:  # DeVries & Taylor 2017: zero (the mean, once normalised) a square of half the
            # side (16x16 on CIFAR-10) centred anywhere in the image, so it may reach past the border
            side = max(1, min(h, w) // 2)
            cy = torch.randint(0, h, (n, 1, 1), device=dev, generator=generator)
            cx = torch.randint(0, w, (n, 1, 1), device=dev, generator=generator)
            rows, cols = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
            hole = ((rows >= cy - side // 2) & (rows < cy - side // 2 + side)
                    & (cols >= cx - side // 2) & (cols < cx - side // 2 + side))
            x = x.masked_fill(hole.unsqueeze(1), 0.0)
        return x, (y.long() if masks else y)


class FolderData:
    """An image folder streamed through a DataLoader (workers, pinned memory): random resized
    crops and flips for training, resize and centre crop for evaluation, then normalisation.
    Unreadable files stop the run with their path (`on_bad_image="fail"`) or are left out of
    their batch with a logged line each (`"skip"`)."""

    def __init__(self, root: str | ImageFolder, train: bool, size: tuple[int, ...], mean, std, batch_size: int,
                 device: torch.device, workers: int | None = None, on_bad_image: str = "fail", log=print):
        from torchvision.transforms import v2

        h = size[1]
        grey = [v2.Grayscale(1)] if size[0] == 1 else []  # the ITU-R 601 luma, as PIL's "L"
        steps = grey + [v2.RandomResizedCrop(size[1:], antialias=True), v2.RandomHorizontalFlip()] if train else \
            grey + [v2.Resize(round(h * 256 / 224), antialias=True), v2.CenterCrop(size[1:])]
        tf = v2.Compose([v2.ToImage(), *steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
        self.dataset = root if isinstance(root, ImageFolder) else ImageFolder(root, train)  # listed once
        self.dataset.transform, self.dataset.bad_images = tf, "return"
        self.classes, self.labels = self.dataset.classes, self.dataset.labels.to(device)
        self.train, self.batch_size, self.device = train, batch_size, device
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        self.on_bad_image, self.log, self.skipped = on_bad_image, log, set()

    def __len__(self) -> int:
        return len(self.dataset)

    def process_batch_size(self, world: int) -> int:
        """Images per batch in each process of a torchrun job of `world` processes."""
        return max(1, self.batch_size // world)

    def batches(self, order: Tensor | None = None, d: Dist | None = None, seed: int = 0):
        """(x, y) on the device, taking the images in `order` (default: all, in order); the
        workers' random transforms are seeded from `seed`. In a torchrun job each process reads
        every world-th image of the order, batch_size / world per step."""
        world, rank = (d.world, d.rank) if d else (1, 0)
        idx = (torch.arange(len(self)) if order is None else order.cpu())[rank::world]
        loader = torch.utils.data.DataLoader(
            self.dataset, self.process_batch_size(world), sampler=idx.tolist(), num_workers=self.workers,
            pin_memory=self.device.type == "cuda", collate_fn=collate_readable,
            generator=torch.Generator().manual_seed(seed), persistent_workers=False)
        for x, y, bad in loader:
            for message in bad:
                if self.on_bad_image == "fail":
                    raise DatasetError(f"{message}; remove it, or pass --on-bad-image skip to leave such files out")
                if message not in self.skipped:
                    self.skipped.add(message)
                    self.log(f"skipped {message}")
            if x is not None:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class TableData:
    """A numeric table on the device (csv:PATH): features standardised with the training rows'
    mean and std, targets as they are. The first 80 % of the rows train, the last 20 % test."""

    def __init__(self, features: Tensor, targets: Tensor, mean: Tensor, std: Tensor, device: torch.device):
        self.x = ((features - mean) / std).to(device)
        self.labels = targets.to(device)
        self.classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: Tensor, augment: tuple[str, ...] = (), generator=None):
        return self.x[idx], self.labels[idx]


def table_data(path: str, target: str, device: torch.device, val_split: float = 0.0
               ) -> tuple[TableData, TableData, Tensor, Tensor, TableData | None]:
    """(training rows, test rows, mean, std, validation rows or None): the first 80 % of the rows
    train and the rest test; a validation split takes the last of the training rows."""
    from .data import held_out, load_csv

    features, targets, _ = load_csv(path, target)
    cut = max(1, int(0.8 * len(targets)))
    train_x, train_y = features[:cut], targets[:cut]
    val = held_out(train_y, val_split) if val_split else torch.zeros(cut, dtype=torch.bool)
    # scikit-learn's StandardScaler: the population std, and 1 for a column constant in training
    # (1e-8 would blow a test row's other value up to ~1e8; the sample std of one row is NaN)
    mean, std = train_x[~val].mean(0), train_x[~val].std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (TableData(train_x[~val], train_y[~val], mean, std, device),
            TableData(features[cut:], targets[cut:], mean, std, device), mean, std,
            TableData(train_x[val], train_y[val], mean, std, device) if val.any() else None)


def make_data(dataset: str, train: bool, size, mean, std, device, data_dir=None, batch_size: int = 128,
              classes=(), per_class: int | None = None, **folder_options):
    """DeviceData for the small datasets, FolderData for `folder:PATH`: only `classes` (if given),
    at most the first `per_class` images of each."""
    if dataset.startswith("folder:"):
        images = ImageFolder(dataset[len("folder:"):], train).select(classes, per_class)
        return FolderData(images, train, size, mean, std, batch_size, device, **folder_options)
    split = subset(load_dataset(dataset, train=train, data_dir=data_dir), classes, per_class)
    return DeviceData(split, size, mean, std, device)


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(cfg, model)
    params = [p for g in groups for p in g["params"]]
    wd = cfg.weight_decay
    # one fused kernel for all parameters where PyTorch has one (CPU and CUDA) instead of a loop
    # over the parameter tensors
    fused = {"fused": True} if _fusable(params) else {}
    if cfg.optimizer == "sgd":  # momentum 0 is plain mini-batch SGD
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=wd, **fused)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=wd, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=wd, **fused)
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


def full_batch_size(data, cfg: TrainConfig, d: Dist = Dist()) -> int:
    """The number of images in a full training batch of this process (a torchrun job splits
    every batch among its processes)."""
    if isinstance(data, FolderData):
        return data.process_batch_size(d.world)
    n = min(cfg.batch_size, len(data))
    return n // d.world + (d.rank < n % d.world)


def seen_images(steps: int, cfg: TrainConfig, data) -> int:
    """Training images in the first `steps` steps of an epoch (the last batch may be short)."""
    if cfg.overfit_batch:
        return min(cfg.batch_size, len(data)) * steps
    return min(steps * cfg.batch_size, len(data))


def weights_config(weights: str) -> dict | None:
    """The configuration of a cnnlab run given as weights (None for other weights)."""
    if weights_kind(weights) != "run":
        return None
    from .evaluate import run_config

    return run_config(weights)


def weights_normalization(weights: str) -> tuple[list, list] | None:
    """The input normalisation the weights were trained with: ImageNet's for published weights,
    the run's for a cnnlab run; None when a bare file does not say."""
    if weights_kind(weights) == "published":
        return list(IMAGENET_NORMALIZATION[0]), list(IMAGENET_NORMALIZATION[1])
    source = weights_config(weights)
    return (source["mean"], source["std"]) if source else None


def head_name(model: nn.Module) -> str:
    """The classifier: the last linear layer (the last layer with parameters if there is none)."""
    named = [(n, m) for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    linear = [n for n, m in named if isinstance(m, nn.Linear)]
    return linear[-1] if linear else named[-1][0]


def freeze(model: nn.Module, strategy: str, freeze_until: str | None = None) -> list[nn.Module]:
    """Freeze the layers the strategy keeps fixed; returns them (they must stay in eval mode, so
    batch-norm statistics and dropout do not change either). feature-extractor: all but the
    classifier; fine-tune-top: the first two thirds of the weighted layers; freeze_until: every
    layer up to and including that module (a name from named_modules, e.g. layer3)."""
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    names = [n for n, _ in leaves]
    if freeze_until:
        hits = [i for i, n in enumerate(names) if n == freeze_until or n.startswith(freeze_until + ".")]
        if not hits:
            tops = sorted({n.split(".")[0] for n in names}, key=[n.split(".")[0] for n in names].index)
            raise CnnlabError(f"freeze until {freeze_until!r}: {model.model_name} has no such layer; "
                              f"its top-level layers: {', '.join(tops)}")
        cut = hits[-1] + 1
    elif strategy == "feature-extractor":
        head = head_name(model)
        cut = next(i for i, n in enumerate(names) if n == head or n.startswith(head + "."))
    elif strategy == "fine-tune-top":
        weighted = [i for i, (_, m) in enumerate(leaves) if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))]
        cut = weighted[len(weighted) * 2 // 3]
    else:
        return []
    frozen = [m for _, m in leaves[:cut]]
    for m in frozen:
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
    return frozen


class _StopRequest:
    """Within `with`, SIGINT (Ctrl-C) and SIGTERM only record that a stop was asked for; the loop
    stops at the next step, after writing a checkpoint. A second Ctrl-C stops at once."""

    def __init__(self):
        self.signal, self._previous = None, {}

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _agree(stop_signal: str | None, bad_step: Tensor, d: Dist) -> tuple[str | None, int]:
    """The stop request and the first non-finite step, agreed by all processes of a torchrun job
    (a process that stopped alone would leave the others waiting in the next all-reduce)."""
    if d.world == 1:
        return stop_signal, int(bad_step.item())
    import torch.distributed as dist

    flags = torch.stack([torch.tensor(float(stop_signal is not None), device=bad_step.device),
                         torch.where(bad_step < 0, torch.inf, bad_step.float())])
    flags[0] = -flags[0]  # one MIN reduction: any process's stop, and the earliest bad step
    dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    first_bad = -1 if math.isinf(flags[1].item()) else int(flags[1].item())
    return (stop_signal or "SIGTERM") if flags[0].item() < 0 else None, first_bad


def _tensorboard(path: Path):
    """A TensorBoard writer for the run's per-epoch metrics, when TensorBoard is installed."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(path))


def _fusable(params: list[Tensor]) -> bool:
    """Fused SGD/Adam/AdamW exist for float parameters on the CPU and CUDA from PyTorch 2.4."""
    version = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    return version >= (2, 4) and bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16)
        for p in params)


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
            cycle = cfg.optimizer in ("adam", "adamw") or (cfg.optimizer != "adagrad" and cfg.momentum > 0)
            main = sched.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=rest,
                                    pct_start=0.25 if rest > 4 else min(0.75, 1.5 / rest), cycle_momentum=cycle)
        elif cfg.schedule == "cosine":
            main = sched.CosineAnnealingLR(opt, T_max=rest)
        elif cfg.schedule == "step":
            main = sched.StepLR(opt, cfg.step_size * steps_per_epoch, cfg.gamma)
        elif cfg.schedule == "multistep":  # x gamma at 50 % and 75 % of training (He et al.'s CIFAR schedule)
            main = sched.MultiStepLR(opt, [rest // 2, rest * 3 // 4], cfg.gamma)
        elif cfg.schedule == "exponential":
            main = sched.LambdaLR(opt, lambda s: cfg.gamma ** (s / steps_per_epoch))
        else:  # none, and plateau (which acts at epoch ends)
            main = sched.LambdaLR(opt, lambda s: 1.0)
        if self.warmup:
            warm = sched.LinearLR(opt, start_factor=1e-3, total_iters=self.warmup)
            main = sched.SequentialLR(opt, [warm, main], milestones=[self.warmup])
        self.per_step = main
        self.plateau = sched.ReduceLROnPlateau(opt, factor=cfg.gamma, patience=2) if cfg.schedule == "plateau" else None

    def step(self) -> None:
        self.per_step.step()

    def epoch_end(self, loss: float) -> None:
        if self.plateau is not None:
            self.plateau.step(loss)

    def state_dict(self) -> dict:
        state = {"per_step": self.per_step.state_dict()}
        if self.plateau is not None:
            state["plateau"] = self.plateau.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


@torch.no_grad()
def initialize(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear weights: N(0, 0.01^2), Xavier/Glorot or He/MSR (fan-in);
    biases to zero. "paper" keeps what the builder did."""
    if scheme == "paper":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            if scheme == "normal":
                nn.init.normal_(m.weight, 0.0, 0.01)
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def penalty(model: nn.Module, l1: float, l2: float) -> Tensor | float:
    """l1 * sum|w| + l2 * sum w^2 over weights (tensors of two or more dimensions)."""
    if not l1 and not l2:
        return 0.0
    weights = [p for p in model.parameters() if p.ndim > 1 and p.requires_grad]
    total = 0.0
    if l1:
        total = total + l1 * sum(p.abs().sum() for p in weights)
    if l2:
        total = total + l2 * sum(p.pow(2).sum() for p in weights)
    return total


def mix_batch(x: Tensor, y: Tensor, alpha: float, seed: int, step: int, generator: torch.Generator
              ) -> tuple[Tensor, Tensor, float]:
    """mixup (Zhang et al. 2018): every image blended with another of the batch, lam x_i +
    (1 - lam) x_j, with lam ~ Beta(alpha, alpha) drawn once per batch as in the paper's code; the
    loss blends the two labels' losses the same way. (x, the partners' labels, lam). lam depends
    only on the seed and the step, so a resumed run draws the same ones (and waits for no device)."""
    import numpy as np

    lam = float(np.random.default_rng([seed, step]).beta(alpha, alpha))
    partner = torch.randperm(len(x), device=x.device, generator=generator)
    return lam * x + (1 - lam) * x[partner], y[partner], lam


def loss_fn(out, y: Tensor, label_smoothing: float) -> Tensor:
    """Cross-entropy; GoogLeNet's auxiliary classifiers add 0.3 x their losses (Szegedy et al. §5).
    Float targets (regression) get the mean squared error."""
    if y.is_floating_point():
        return F.mse_loss(out.squeeze(1), y)
    if isinstance(out, tuple):
        main, *aux = out
        return F.cross_entropy(main, y, label_smoothing=label_smoothing) + 0.3 * sum(
            F.cross_entropy(a, y, label_smoothing=label_smoothing) for a in aux)
    return F.cross_entropy(out, y, label_smoothing=label_smoothing, ignore_index=IGNORE)


def eval_batch_size(data, values: int = 1 << 23) -> int:
    """Images per evaluation batch of in-memory data: 1,000, or fewer where that would exceed
    `values` input values (32 MiB of float32): 55 images at 3x224x224."""
    if getattr(data, "images", None) is None or data.images.ndim != 4:
        return 1000
    c, h, w = data.images.shape[1:]
    h, w = data.resize or (h, w)
    return max(1, min(1000, values // (c * h * w)))


def eval_batches(data, batch_size: int | None = None, d: Dist = Dist()):
    """Every (x, y) of `data` in order, without augmentation (in a torchrun job: this process's share)."""
    if isinstance(data, FolderData):
        yield from data.batches(None, d)
        return
    batch_size = batch_size or eval_batch_size(data)
    idx = torch.arange(d.rank, len(data), d.world, device=data.labels.device)
    for start in range(0, len(idx), batch_size):
        yield data.batch(idx[start:start + batch_size])


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int | None = None, d: Dist = Dist()) -> dict:
    """Loss, top-1 and top-5 accuracy of `model` on all of `data` (summed over a torchrun job)."""
    model.eval()
    if isinstance(data, TableData):  # regression: mean squared error, RMSE, mean absolute error
        err = model(data.x).float().squeeze(1) - data.labels
        mse = err.pow(2).mean().item()
        return {"loss": mse, "rmse": mse ** 0.5, "mae": err.abs().mean().item()}
    if data.labels.ndim == 3:  # segmentation: a pixel confusion matrix
        return evaluate_segmentation(model, data, d)
    sums = None
    for x, y in eval_batches(data, batch_size, d):
        logits = model(x).float()
        k = min(5, logits.shape[1])
        hits = logits.topk(k, 1).indices == y.view(-1, 1)
        batch = torch.stack([F.cross_entropy(logits, y, reduction="sum"), hits[:, 0].sum().float(),
                             hits.any(1).sum().float(), torch.tensor(float(len(y)), device=y.device)]).double()
        sums = batch if sums is None else sums + batch
    loss, top1, top5, n = _all_reduce(sums, d).tolist()
    return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n}


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, data, d: Dist = Dist(), batch_size: int = 100) -> dict:
    """Loss per labelled pixel, pixel accuracy (also as "top1"), mean accuracy and mean IoU."""
    model.eval()
    num_classes = len(data.classes)
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long, device=data.labels.device)
    loss = torch.zeros((), dtype=torch.float64, device=data.labels.device)
    for x, y in eval_batches(data, batch_size, d):
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum").double()
        conf += confusion(logits.argmax(1), y, num_classes)
    conf = _all_reduce(conf, d)
    loss = _all_reduce(loss, d).item() / max(1, conf.sum().item())
    s = scores(conf.cpu())
    return {"loss": loss, "top1": s["pixel_accuracy"], "miou": s["miou"], "mean_accuracy": s["mean_accuracy"]}


_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)


def layer_statistics(model: nn.Module, x: Tensor, y: Tensor) -> list[dict]:
    """Per leaf layer on one batch (eval mode, so no statistics are updated): the output's mean
    and std, the fraction of ReLU outputs that are exactly zero ("dead" for this batch), and the
    norm of the gradient reaching the layer's weights; vanishing gradients and dead units show here."""
    was_training = model.training
    model.eval()
    rows, hooks = [], []
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]

    def record(name, module):
        def hook(mod, inputs, out):
            if isinstance(out, Tensor) and out.is_floating_point():
                o = out.detach().float()
                rows.append({"layer": name, "type": type(mod).__name__, "out_mean": o.mean().item(),
                             "out_std": o.std().item() if o.numel() > 1 else 0.0,
                             "dead_fraction": (o == 0).float().mean().item() if isinstance(mod, _RELU_LIKE) else None})
        return hook

    for name, module in leaves:
        hooks.append(module.register_forward_hook(record(name, module)))
    try:
        model.zero_grad(set_to_none=True)
        out = model(x)
        F.cross_entropy(out[0] if isinstance(out, tuple) else out, y).backward()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    modules = dict(leaves)
    for row in rows:
        weight = getattr(modules[row["layer"]], "weight", None)
        grad = weight.grad if isinstance(weight, Tensor) else None
        row["grad_norm"] = grad.norm().item() if grad is not None else None
        row["weight_std"] = weight.detach().float().std().item() if isinstance(weight, Tensor) and weight.numel() > 1 else None
    model.zero_grad(set_to_none=True)
    return rows


def _git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return (out.stdout.strip() or None) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _write_json(path: Path, obj) -> None:
    _write_text(path, json.dumps(obj, indent=2))


def _write_metrics(run: Path, history: list[dict]) -> None:
    """metrics.jsonl, a line per epoch, rewritten whole (a few kB): a full disk cannot leave half a line."""
    _write_text(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def _write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, disable=not sys.stderr.isatty(), unit="batch")


def epoch_order(data, cfg: TrainConfig, gen: torch.Generator, epoch: int) -> Tensor:
    """The order of the training examples in one epoch: a permutation drawn from the run's generator
    for data on the device; for folders (read by worker processes) one drawn from seed + epoch.
    A checkpoint taken inside an epoch stores it, so --resume continues the same epoch."""
    if cfg.overfit_batch:  # the same first batch every epoch, in the same order
        return torch.arange(min(cfg.batch_size, len(data)), device=data.labels.device)
    if isinstance(data, FolderData):
        return torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + epoch))
    return torch.randperm(len(data), device=data.labels.device, generator=gen)


def epoch_batches(data, cfg: TrainConfig, gen: torch.Generator, epoch: int, order: Tensor, d: Dist = Dist(),
                  first_step: int = 0):
    """The training batches of an epoch in `order`, from step `first_step` on; augmentations draw
    from the run's generator (data on the device) or from seeds per epoch and step (folders)."""
    start = first_step * cfg.batch_size
    if isinstance(data, FolderData):
        yield from data.batches(order[start:], d, seed=(cfg.seed * 100_003 + epoch) * 100_003 + first_step)
        return
    for begin in range(start, len(order), cfg.batch_size):
        x, y = data.batch(order[begin:begin + cfg.batch_size], cfg.augment, gen)
        if d.world > 1:  # every process draws the same global batch and keeps its own part
            x, y = x.tensor_split(d.world)[d.rank], y.tensor_split(d.world)[d.rank]
        yield x, y


RUN_FILES = ("config.json", "checkpoint.safetensors", "model.safetensors", "metrics.jsonl")


def refuse_existing_run(cfg: TrainConfig) -> None:
    """A new run must not overwrite the files of another one in its directory (unless it
    continues it, resume, or replaces it, overwrite)."""
    if not cfg.out or cfg.resume or cfg.overwrite:
        return
    out = Path(cfg.out)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return
    what = ""
    try:
        config = json.loads((out / "config.json").read_text())
        what = f" ({config['model']} on {config['dataset']})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise CnnlabError(f"{out} already holds a run{what}: {', '.join(found)}; continue it with --resume, "
                      "replace it with --overwrite, or choose another --out")


# what a resumed run may do differently: where and how fast it runs, how often it saves, and
# (with a schedule that does not depend on the run's length) how many epochs it trains
RESUME_MAY_CHANGE = {"epochs", "device", "amp", "compile", "max_steps", "out", "resume", "overwrite",
                     "checkpoint_steps", "checkpoint_minutes", "data_dir", "on_bad_image", "layer_stats", "early_stop",
                     "cnnlab_version", "git_hash"}
LENGTH_FREE_SCHEDULES = ("none", "step", "exponential", "plateau")


def check_resume(resolved: dict, saved: dict, run: Path) -> None:
    """Refuse to resume a run with settings its checkpoint does not follow: the optimiser and the
    schedule come back from the checkpoint (a new --lr was written to config.json but not used), and
    a schedule laid out over the run's length cannot be lengthened (one-cycle failed, cosine rises)."""
    for key, value in resolved.items():
        if key not in RESUME_MAY_CHANGE and key in saved and json.loads(json.dumps(value)) != saved[key]:
            raise CnnlabError(f"{run} was trained with {key} {saved[key]!r}, not {value!r}: --resume continues a "
                              f"run with its own settings; drop the option, or start a new run from its weights "
                              f"(--weights {run} --out NEW)")
    epochs = saved.get("epochs", resolved["epochs"])
    if resolved["epochs"] != epochs and saved["schedule"] not in LENGTH_FREE_SCHEDULES:
        raise CnnlabError(f"{run}'s {saved['schedule']} schedule is laid out over {epochs} epoch{'s' * (epochs != 1)}; "
                          f"a resumed run keeps it (a new length would bend it): start a new run from its weights "
                          f"(--weights {run} --epochs {resolved['epochs']} --out NEW), or use a schedule that does "
                          f"not depend on the length ({', '.join(LENGTH_FREE_SCHEDULES)})")


def train(cfg: TrainConfig, log=print) -> dict:
    """Train cfg.model on cfg.dataset; returns the final test metrics, the history and the model.

    With cfg.out the run directory gets config.json (resolved settings, cnnlab version, git hash,
    input normalisation `mean`/`std`), metrics.jsonl (one line per epoch), checkpoint.safetensors
    (everything --resume needs, rewritten atomically every epoch), best.safetensors (the weights
    of the best test top-1 so far) and model.safetensors (the final weights).
    """
    cfg.check()
    refuse_existing_run(cfg)
    d, device = setup_distributed(cfg.device)
    if d.rank != 0:
        log = lambda line: None  # noqa: E731  (rank 0 speaks and writes for the job)
    torch.manual_seed(cfg.seed)
    info = get_model_info(cfg.model)
    folder, table = cfg.dataset.startswith("folder:"), cfg.dataset.startswith("csv:")
    val_data = None
    segmentation = is_segmentation(cfg.dataset)
    if table:
        if cfg.model != "mlp" or cfg.whiten or cfg.augment:
            raise CnnlabError("a csv: dataset trains the mlp model, without --whiten or --augment")
        train_data, test_data, mean, std, val_data = table_data(cfg.dataset[4:], cfg.target, device, cfg.val_split)
        cfg.model_kwargs = {**cfg.model_kwargs, "in_features": train_data.x.shape[1]}
        mean, std = mean.tolist(), std.tolist()
    else:
        mean, std = (IMAGENET_NORMALIZATION if folder or cfg.dataset.startswith("voc:")
                     else NORMALIZATION.get(cfg.dataset, (None, None)))
    if mean is None:
        raise CnnlabError(f"unknown dataset {cfg.dataset!r}; use mnist, fashion-mnist, cifar10, cifar100, "
                          "mnist-scenes, voc:PATH or folder:PATH")
    if segmentation and (cfg.classes or cfg.train_per_class or cfg.test_per_class):
        raise CnnlabError("--classes, --train-per-class and --test-per-class pick images of a class; a "
                          "segmentation dataset has every class in every image")
    if segmentation and "scale" in cfg.augment:
        raise CnnlabError("segmentation masks move along with crop, translate and flip, not with scale; "
                          "drop scale from --augment")
    if cfg.weights and cfg.strategy != "from-scratch" and not table:  # the input the weights expect
        mean, std = weights_normalization(cfg.weights) or (mean, std)
    if segmentation:
        train_split = load_segmentation(cfg.dataset, train=True, data_dir=cfg.data_dir)
    else:
        train_split = None if folder or table else subset(load_dataset(cfg.dataset, train=True, data_dir=cfg.data_dir),
                                                          cfg.classes, cfg.train_per_class)
    folder_train = ImageFolder(cfg.dataset[7:], True).select(cfg.classes, cfg.train_per_class) if folder else None
    val_part = val_folder = None  # a validation split of the training images
    if cfg.val_split and train_split is not None:
        train_split, val_part = split_off(train_split, cfg.val_split)
    elif cfg.val_split and folder:
        val_folder = folder_train.split_off(cfg.val_split)
    if cfg.val_split and not (len(val_part or ()) or len(val_folder or ()) or val_data is not None):
        raise CnnlabError(f"a validation split of {cfg.val_split} leaves no example to validate on (each class keeps "
                          "at least one for training): use more training data or --val-split 0")
    classes = folder_train.classes if folder else () if table else train_split.classes
    num_classes = len(classes) or 1  # a regression has one output
    weights = cfg.weights if cfg.strategy != "from-scratch" else None
    if weights and cfg.init != "paper":
        raise CnnlabError("--init re-initialises the weights that --weights loads; give one of them")
    if weights:  # transfer learning: pretrained layers and a new classifier, unless the weights are
        # a cnnlab run on this very dataset and classes (then training simply continues from them)
        model = create_model(cfg.model, num_classes=num_classes, weights=weights, **cfg.model_kwargs)
        source = weights_config(weights)
        if not (source and source.get("dataset") == cfg.dataset and list(source.get("classes", [])) == list(classes)):
            model.reset_classifier(num_classes)
    else:
        model = create_model(cfg.model, num_classes=num_classes if num_classes != info.num_classes else None,
                             **cfg.model_kwargs)
    if getattr(model, "dense", False) != segmentation:
        raise CnnlabError(f"{cfg.model} scores every pixel: train it on a segmentation dataset (mnist-scenes, "
                          "voc:PATH)" if not segmentation else
                          f"{cfg.dataset} labels every pixel: train a segmentation model on it (fcn32s, fcn16s, "
                          "fcn8s, dilated_frontend)")
    initialize(model, cfg.init)
    frozen = freeze(model, cfg.strategy, cfg.freeze_until)
    if cfg.dropout is not None:
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = cfg.dropout
    fast_cuda = cfg.amp and device.type == "cuda"
    # channels_last suits the convolution kernels of both cuDNN and oneDNN (the CPU): LeNet-5 on MNIST
    # trains about 1.2x faster with it on a 2-core CPU (bench/lenet_step.py)
    model.to(device, memory_format=torch.preserve_format if table else torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=fast_cuda)
    size = getattr(model, "input_size", info.input_size)
    if segmentation:  # fully convolutional: the data's own height and width
        size = (size[0], *train_split.images.shape[2:])
    if not (folder or table):
        mean, std = channel_normalization(train_split, size, mean, std)
    elif folder:
        mean, std = grey_normalization(size, mean, std)
    if cfg.normalize == "center" and not table:  # the 0-255 scale: x * 255 - mean * 255
        std = [1 / 255] * len(std)
    if table:
        size = (train_data.x.shape[1],)
    elif folder:
        train_data = FolderData(folder_train, True, size, mean, std, cfg.batch_size, device,
                                on_bad_image=cfg.on_bad_image, log=log)
        test_data = make_data(cfg.dataset, False, size, mean, std, device, batch_size=cfg.batch_size,
                              classes=cfg.classes, per_class=cfg.test_per_class, on_bad_image=cfg.on_bad_image,
                              log=log)
    else:
        train_data = DeviceData(train_split, size, mean, std, device)
        test_data = (DeviceData(load_segmentation(cfg.dataset, False, cfg.data_dir), size, mean, std, device)
                     if segmentation else
                     make_data(cfg.dataset, False, size, mean, std, device, cfg.data_dir, classes=cfg.classes,
                               per_class=cfg.test_per_class))
    if cfg.whiten and folder:
        raise CnnlabError("ZCA whitening needs a dataset held in memory, not an image folder")
    if cfg.augment and folder:
        raise CnnlabError("image folders use random resized crops and flips; --augment is for in-memory datasets")
    if val_part is not None:
        val_data = DeviceData(val_part, size, mean, std, device)
    elif val_folder is not None:
        val_data = FolderData(val_folder, False, size, mean, std, cfg.batch_size, device,
                              on_bad_image=cfg.on_bad_image, log=log)
    if cfg.whiten:  # fitted on the training set, applied to the others, saved for evaluation
        test_data.zca = train_data.fit_zca()
        if val_data is not None:
            val_data.zca = test_data.zca
    steps_per_epoch = 1 if cfg.overfit_batch else math.ceil(len(train_data) / cfg.batch_size)
    net = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        log(f"distributed: {d.world} processes, global batch {cfg.batch_size} ({cfg.batch_size // d.world} per "
            f"process), lr {cfg.lr} as given (for a global batch k times larger, the linear scaling rule "
            "multiplies the lr by k)")
    eager_net = net
    if cfg.compile:
        net = torch.compile(net, mode=None if cfg.compile in (True, "default") else cfg.compile)
    # a compiled step is built for full batches; another size (an epoch's short last batch) runs
    # eagerly on the same parameters instead of compiling the step again
    full = full_batch_size(train_data, cfg, d)
    opt = make_optimizer(cfg, model)
    schedule = Schedule(cfg, opt, steps_per_epoch)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    run = Path(cfg.out) if cfg.out else None
    resolved = {**asdict(cfg), "num_classes": num_classes, "input_size": list(size),
                "image_size": list(train_split.images.shape[1:]) if train_split else list(size), "mean": list(mean),
                "std": list(std), "classes": list(classes), "cnnlab_version": __version__,
                "git_hash": _git_hash()}
    history, first_epoch, best = [], 1, None
    resumed = {"step_in_epoch": 0, "loss_sum": 0.0, "correct_sum": 0, "steps_done": 0, "time": 0.0}
    order = None
    writes = run is not None and d.rank == 0  # in a torchrun job, rank 0 writes for all
    if run and cfg.resume:  # every process restores the same state
        tensors, meta = load(run / "checkpoint.safetensors")
        check_state_dict(cfg.model, model.state_dict(), {k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                         run / "checkpoint.safetensors")
        if isinstance(meta.get("config"), dict):
            check_resume(resolved, meta["config"], run)
        try:
            first_epoch = unpack_training_state(tensors, meta, model, opt, schedule, gen) + 1
            history, best = meta["history"], meta["best"]
            resumed.update({k: meta[k] for k in resumed if k in meta})
            if resumed["step_in_epoch"]:
                order = tensors["order"].to(train_data.labels.device)
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise WeightsError(f"{run / 'checkpoint.safetensors'}: not a checkpoint of this run "
                               f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        log(f"resuming {run} after epoch {first_epoch - 1}"
            + (f", step {resumed['step_in_epoch']}" if resumed["step_in_epoch"] else ""))
    if writes:
        run.mkdir(parents=True, exist_ok=True)
        for stale in run.glob("tmp*.part"):  # a write that a kill interrupted (the file it meant to replace is whole)
            stale.unlink()
        _write_json(run / "config.json", resolved)
        if cfg.whiten:
            atomic_save({"mean": train_data.zca[0], "matrix": train_data.zca[1]}, run / "whitening.safetensors",
                        {"config": resolved})
        _write_metrics(run, history)
    board = _tensorboard(run / "tensorboard") if writes else None
    start = time.perf_counter() - (resumed["time"] or (history[-1]["time"] if history else 0.0))
    steps_done = resumed["steps_done"] or (first_epoch - 1) * steps_per_epoch
    stop = _StopRequest()

    def place(epoch_done: int, step_in_epoch: int) -> str | None:  # where a checkpoint stands, in words
        return (f"of epoch {epoch_done + 1}, step {step_in_epoch}" if step_in_epoch
                else f"after epoch {epoch_done}" if epoch_done else None)

    kept = place(first_epoch - 1, resumed["step_in_epoch"])  # the newest resumable checkpoint

    def save_checkpoint(epoch_done: int, extra: dict, tensors: dict | None = None) -> None:
        nonlocal kept
        packed, meta = pack_training_state(model, opt, schedule, epoch_done, gen,
                                           {"config": resolved, "history": history, "best": best,
                                            "steps_done": steps_done, "time": time.perf_counter() - start, **extra})
        atomic_save({**packed, **(tensors or {})}, run / "checkpoint.safetensors", meta)
        kept = place(epoch_done, extra.get("step_in_epoch", 0))

    if stopped := _stalled(history, cfg.early_stop):  # a resumed run that had already stopped early
        log(_early_stop_line(stopped, cfg.early_stop, writes, num_classes))
    with stop, _say_how_to_resume(cfg, run, lambda: kept):
        for epoch in range(first_epoch, cfg.epochs + 1 if not stopped else first_epoch):
            model.train()
            for m in frozen:  # fixed layers keep their batch-norm statistics and drop nothing
                m.eval()
            first_step = resumed["step_in_epoch"] if epoch == first_epoch else 0
            if not first_step:
                order = epoch_order(train_data, cfg, gen, epoch)
            total = torch.full((), resumed["loss_sum"] if first_step else 0.0, device=device)
            # training top-1 (segmentation: each image's pixel accuracy, summed)
            correct = torch.full((), float(resumed["correct_sum"]) if first_step else 0.0, device=device)
            bad_step = torch.full((), -1, device=device)  # the first step whose loss was not finite
            taken = first_step
            bar = _progress(steps_per_epoch, f"epoch {epoch}/{cfg.epochs}")
            t0, last_save = time.perf_counter(), time.perf_counter()
            check_every = 1 if device.type == "cpu" and d.world == 1 else 20  # a check waits for the device
            for i, (x, y) in enumerate(epoch_batches(train_data, cfg, gen, epoch, order, d, first_step), first_step):
                try:
                    if cfg.compile == "reduce-overhead":  # a new step: the graphs' last outputs are done with
                        torch.compiler.cudagraph_mark_step_begin()
                    if cfg.mixup:
                        x, y_mixed, lam = mix_batch(x, y, cfg.mixup, cfg.seed, steps_done, gen)
                    with autocast:
                        out = (net if len(x) == full else eager_net)(x)
                        loss = (lam * loss_fn(out, y, cfg.label_smoothing) + (1 - lam) * loss_fn(
                                out, y_mixed, cfg.label_smoothing) if cfg.mixup else
                                loss_fn(out, y, cfg.label_smoothing)) + penalty(model, cfg.l1, cfg.l2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                except torch.cuda.OutOfMemoryError:
                    raise CnnlabError(f"out of memory on {device} at batch size {cfg.batch_size}; "
                                      f"try --batch-size {max(1, cfg.batch_size // 2)}") from None
                if cfg.clip_grad_norm:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                lr = opt.param_groups[0]["lr"]
                bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss.detach()), steps_done + 1, bad_step)
                opt.step()
                schedule.step()
                total += loss.detach()
                if not table:  # as the batch was seen (augmented, dropout on), like Keras' accuracy
                    predicted = (out[0] if isinstance(out, tuple) else out).argmax(1)
                    hits = predicted == y
                    if cfg.mixup:  # a blend is as right as the share of the label it was given
                        hits = lam * hits + (1 - lam) * (predicted == y_mixed)
                    correct += (hits.sum() if y.ndim == 1 else
                                (hits.sum((1, 2)) / (y != IGNORE).sum((1, 2)).clamp_min(1)).sum())
                steps_done += 1
                taken = i + 1
                done = cfg.max_steps and steps_done >= cfg.max_steps
                due = writes and taken < steps_per_epoch and not done and (
                    (cfg.checkpoint_steps and steps_done % cfg.checkpoint_steps == 0)
                    or (cfg.checkpoint_minutes and time.perf_counter() - last_save >= 60 * cfg.checkpoint_minutes))
                if due or done or steps_done % check_every == 0 or taken == steps_per_epoch:
                    stopping, first_bad = _agree(stop.signal, bad_step, d)
                    if first_bad >= 0:
                        raise TrainingDiverged(
                            f"the loss became {loss.item()} at step {first_bad} (epoch {epoch}, lr {lr:.4g}); "
                            f"{'the last checkpoint is kept in ' + str(run) if run else 'nothing was saved'}; "
                            "try a smaller --lr or --clip-grad-norm")
                    if (due or stopping) and writes:
                        save_checkpoint(epoch - 1, {"step_in_epoch": taken, "loss_sum": total.item(),
                                                    "correct_sum": correct.item()},
                                        {"order": order})
                        last_save = time.perf_counter()
                    if stopping:
                        interrupted = TrainingInterrupted(
                            f"stopped by {stopping} at epoch {epoch}, step {taken}; "
                            + (f"the checkpoint is saved; resume with: cnnlab train {cfg.model} --out {run} --resume"
                               if run else "nothing was saved (no --out)"))
                        interrupted.exit_code = 128 + signal.Signals[stopping].value  # 130 Ctrl-C, 143 SIGTERM
                        raise interrupted
                if done:
                    break
                if bar is not None and i % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.3g}",
                                    img_s=f"{(i + 1 - first_step) * cfg.batch_size / (time.perf_counter() - t0):.0f}")
                    bar.update(min(20, steps_per_epoch - i))
            if bar is not None:
                bar.close()
            train_loss = _all_reduce(total, d).item() / taken / d.world  # waits for the device
            train_seconds = time.perf_counter() - t0
            schedule.epoch_end(train_loss)
            if cfg.layer_stats and d.rank == 0:
                x, y = eval_batches(train_data, min(256, cfg.batch_size)).__next__()
                stats = layer_statistics(model, x, y)
                if writes:
                    append_text(run / "layer_stats.jsonl",
                                "".join(json.dumps({"epoch": epoch, **r}) + "\n" for r in stats))
                grads = [f"{r['layer']} {r['grad_norm']:.2e}" for r in stats if r["grad_norm"] is not None]
                log("gradient norms, input to output: " + ", ".join(grads))
            with autocast:
                test = evaluate(model, test_data, d=d)
                val = evaluate(model, val_data, d=d) if val_data is not None else {}
            row = {"epoch": epoch, "train_loss": train_loss,
                   **({} if table else {"train_top1": _all_reduce(correct, d).item() / seen_images(taken, cfg, train_data)}),
                   **{f"test_{k}": v for k, v in test.items()}, **{f"val_{k}": v for k, v in val.items()},
                   "lr": opt.param_groups[0]["lr"],
                   "images_per_s": min((taken - first_step) * cfg.batch_size, len(train_data)) / train_seconds,
                   "time": time.perf_counter() - start}
            history.append(row)
            if writes:  # rewritten whole (a few kB): a full disk cannot leave half a line
                _write_metrics(run, history)
                if board is not None:
                    for key, value in row.items():
                        if key != "epoch":
                            board.add_scalar(key, value, epoch)
                    board.flush()
                score = _score(row)
                if best is None or score > best:
                    best = score
                    atomic_save(model.state_dict(), run / "best.safetensors", {"config": resolved, "epoch": epoch})
                save_checkpoint(epoch, {})
            log(f"epoch {epoch}/{cfg.epochs}  train loss {train_loss:.4f}"
                + (f"  val loss {val['loss']:.4f}  {_quality(val, num_classes)}" if val else "")
                + f"  test loss {test['loss']:.4f}  {_quality(test, num_classes)}  {row['images_per_s']:.0f} img/s  "
                f"{row['time']:.1f}s")
            if stopped := _stalled(history, cfg.early_stop):
                log(_early_stop_line(stopped, cfg.early_stop, writes, num_classes))
                break
            if cfg.max_steps and steps_done >= cfg.max_steps:
                log(f"stopped after {steps_done} steps (max steps)")
                break
    if writes:
        atomic_save(model.state_dict(), run / "model.safetensors",
                    {"config": resolved, "epoch": history[-1]["epoch"] if history else cfg.epochs})
        plot_history(history, run / "curves.png")
    if board is not None:
        board.close()
    if d.started_here:
        import torch.distributed as dist
        dist.destroy_process_group()
    return {"test": {k[5:]: v for k, v in history[-1].items() if k.startswith("test_")},
            "history": history, "model": model, "num_classes": num_classes}


def _score(row: dict) -> float:
    """What makes a model the best so far: validation metrics when there is a validation split,
    else the test set's; mean IoU, top-1 accuracy, or minus the loss of a regression."""
    m = "val_" if "val_loss" in row else "test_"
    return row.get(f"{m}miou", row.get(f"{m}top1", -row[f"{m}loss"]))


def _stalled(history: list[dict], patience: int | None) -> dict | None:
    """With early stopping: the best epoch's row once `patience` epochs have passed without a
    better one (the first of equal scores counts), else None."""
    if not patience or not history:
        return None
    best = max(range(len(history)), key=lambda i: _score(history[i]))
    return history[best] if len(history) - 1 - best >= patience else None


def _quality(m: dict, classes: int) -> str:
    """Metrics in words; top-5 only where there are more than 5 classes (else it is 100 % by definition)."""
    return (f"pixel accuracy {100 * m['top1']:.2f}%  mean IoU {100 * m['miou']:.2f}%" if "miou" in m
            else f"top-1 {100 * m['top1']:.2f}%" + (f"  top-5 {100 * m['top5']:.2f}%" if classes > 5 else "")
            if "top1" in m else f"RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}")


def _early_stop_line(best: dict, patience: int, saved: bool, classes: int) -> str:
    on = "validation" if "val_loss" in best else "test"
    what = "mean IoU" if "test_miou" in best else "top-1" if "test_top1" in best else "loss"
    return (f"early stop: {on} {what} has not improved for {patience} epoch{'s' * (patience != 1)}; the best, epoch "
            f"{best['epoch']} (test {_quality({k[5:]: v for k, v in best.items() if k.startswith('test_')}, classes)})"
            + (", is in best.safetensors" if saved else ""))


@contextmanager
def _say_how_to_resume(cfg: "TrainConfig", run: Path | None, kept):
    """A write that fails mid-run (a full disk) stops training: the newest checkpoint is whole,
    so the error says which one it is and how to go on from it."""
    try:
        yield
    except WriteError as e:
        where = kept()
        raise write_error(e.path, e.problem, "training stopped; " + (
            f"the checkpoint {where} is kept: make room, then resume with: cnnlab train {cfg.model} --out {run} --resume"
            if where else "no checkpoint had been written yet: make room and start again")) from None


def plot_history(history: list[dict], path: Path) -> None:
    """Loss, accuracy and learning-rate curves per epoch, as one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.2))
    a.plot(epochs, [r["train_loss"] for r in history], label="train")
    val = "val_loss" in history[0]
    if val:
        a.plot(epochs, [r["val_loss"] for r in history], label="validation")
    a.plot(epochs, [r["test_loss"] for r in history], label="test")
    a.set_title("loss")
    a.legend()
    for split in ("val", "test") if val else ("test",):
        name = "validation " if split == "val" else ""
        if "test_miou" in history[0]:
            b.plot(epochs, [100 * r[f"{split}_top1"] for r in history], label=f"{name}pixel accuracy")
            b.plot(epochs, [100 * r[f"{split}_miou"] for r in history], label=f"{name}mean IoU")
        elif "test_top1" in history[0]:
            b.plot(epochs, [100 * r[f"{split}_top1"] for r in history], label=f"{name}top-1")
            b.plot(epochs, [100 * r[f"{split}_top5"] for r in history], label=f"{name}top-5")
        else:
            b.plot(epochs, [r[f"{split}_rmse"] for r in history], label=f"{name}RMSE")
            b.plot(epochs, [r[f"{split}_mae"] for r in history], label=f"{name}MAE")
    b.set_title("test (%)" if "test_miou" in history[0] else "test accuracy (%)" if "test_top1" in history[0]
                else "test error")
    if val:
        b.set_title(b.get_title().replace("test", "validation and test"))
    b.legend()
    c.plot(epochs, [r["lr"] for r in history])
    c.set_title("learning rate (end of epoch)")
    for ax in (a, b, c):
        ax.set_xlabel("epoch")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def load_model(path: str | os.PathLike, weights: str = "model") -> nn.Module:
    """Rebuild a trained model from a run directory (its `weights`.safetensors: model, best) or
    from one of its .safetensors files; the model takes normalised (N, C, H, W) float input
    (the run's config.json says `mean` and `std`)."""
    path = Path(path)
    file = path / f"{weights}.safetensors" if path.is_dir() else path
    tensors, meta = load(file)
    cfg = meta.get("config")
    if not cfg:
        raise WeightsError(f"{file}: no cnnlab configuration in its metadata; is it a cnnlab run file?")
    if any(k.startswith("model.") for k in tensors):  # a checkpoint: the model part
        tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    info = get_model_info(cfg["model"])
    n = cfg.get("num_classes")
    model = create_model(cfg["model"], num_classes=n if n != info.num_classes else None, **cfg.get("model_kwargs", {}))
    load_into(model, tensors, cfg["model"], file)
    return model.eval()
