"""From a TrainConfig to what the training loop needs: the examples of each split, the model
(new, or from weights, with its layers frozen as the strategy says), and the data fitted to the
model's input and placed on the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.datasets import Split, load_dataset, split_off, subset
from ..data.folders import ImageFolder
from ..data.loaders import DeviceData, FolderData, make_data
from ..data.normalization import channel_normalization, dataset_normalization, grey_normalization
from ..data.segmentation import is_segmentation, load_segmentation
from ..data.tables import TableData, table_data
from ..errors import CnnlabError
from ..factory import create_model, input_normalization, weights_config
from ..models.adapt import freeze, initialize, set_dropout
from ..registry import get_model_info
from .config import TrainConfig


@dataclass
class Examples:
    """A run's training examples as read, before they are fitted to the model: images (a Split,
    or an image folder read as it goes) or the rows of a table, already on the device."""

    train: Split | ImageFolder | TableData
    val: Split | ImageFolder | TableData | None
    test: TableData | None  # a table's test rows come with its training rows
    classes: tuple[str, ...]
    mean: list  # the input normalisation: the dataset's, or the one the weights were trained with
    std: list


@dataclass
class RunData:
    """The splits on the device, at the model's input size, normalised as `mean` and `std` say."""

    train: DeviceData | FolderData | TableData
    val: DeviceData | FolderData | TableData | None
    test: DeviceData | FolderData | TableData
    classes: tuple[str, ...]
    size: tuple[int, ...]  # the model's input size
    image_size: tuple[int, ...]  # the dataset's own (a model may pad it)
    mean: list
    std: list


def read_examples(cfg: TrainConfig, device: torch.device) -> Examples:
    """The training (and validation) examples of cfg.dataset, only the classes and the number
    per class asked for. A table also sets the MLP's number of inputs in cfg.model_kwargs."""
    if cfg.dataset.startswith("csv:"):  # the rows go to the device at once, standardised
        train, test, mean, std, val = table_data(cfg.dataset[4:], cfg.target, device, cfg.val_split)
        cfg.model_kwargs = {**cfg.model_kwargs, "in_features": train.x.shape[1]}
        examples = Examples(train, val, test, (), mean.tolist(), std.tolist())
    else:
        mean, std = dataset_normalization(cfg.dataset)
        if cfg.weights and cfg.strategy != "from-scratch":  # the input the weights expect
            mean, std = input_normalization(cfg.weights, cfg.model) or (mean, std)
        examples = Examples(*_images(cfg), None, (), list(mean), list(std))
        examples.classes = examples.train.classes
    if cfg.val_split and not (examples.val is not None and len(examples.val)):
        raise CnnlabError(
            f"a validation split of {cfg.val_split} leaves no example to validate on (each class keeps "
            "at least one for training): use more training data or --val-split 0"
        )
    return examples


def _images(cfg: TrainConfig) -> tuple[Split | ImageFolder, Split | ImageFolder | None]:
    """The training images and the validation split held out of them (None without one)."""
    if cfg.dataset.startswith("folder:"):
        train = ImageFolder(cfg.dataset[7:], True).select(cfg.classes, cfg.train_per_class)
        return train, train.split_off(cfg.val_split) if cfg.val_split else None
    if is_segmentation(cfg.dataset):
        train = load_segmentation(cfg.dataset, train=True, data_dir=cfg.data_dir)
    else:
        train = subset(load_dataset(cfg.dataset, train=True, data_dir=cfg.data_dir), cfg.classes, cfg.train_per_class)
    return split_off(train, cfg.val_split) if cfg.val_split else (train, None)


def build_model(cfg: TrainConfig, classes: tuple[str, ...], device: torch.device) -> tuple[nn.Module, list]:
    """The model to train, on the device, and its frozen layers: new (the builder's or cfg.init's
    initialisation) or from cfg.weights with a new classifier, its dropout rates set."""
    num_classes = len(classes) or 1  # a regression has one output
    weights = cfg.weights if cfg.strategy != "from-scratch" else None
    if weights:  # transfer learning: pretrained layers and a new classifier, unless the weights are
        # a cnnlab run on this very dataset and classes (then training simply continues from them)
        model = create_model(cfg.model, num_classes=num_classes, weights=weights, **cfg.model_kwargs)
        source = weights_config(weights)
        if not (source and source.get("dataset") == cfg.dataset and list(source.get("classes", [])) == list(classes)):
            model.reset_classifier(num_classes)
    else:
        default = get_model_info(cfg.model).num_classes
        model = create_model(cfg.model, num_classes=num_classes if num_classes != default else None, **cfg.model_kwargs)
    segmentation = is_segmentation(cfg.dataset)
    if getattr(model, "dense", False) != segmentation:
        raise CnnlabError(
            f"{cfg.model} scores every pixel: train it on a segmentation dataset (mnist-scenes, voc:PATH)"
            if not segmentation
            else f"{cfg.dataset} labels every pixel: train a segmentation model on it (fcn32s, fcn16s, "
            "fcn8s, dilated_frontend)"
        )
    initialize(model, cfg.init)
    frozen = freeze(model, cfg.strategy, cfg.freeze_until)
    if cfg.dropout is not None:
        set_dropout(model, cfg.dropout)
    # channels_last suits the convolution kernels of both cuDNN and oneDNN (the CPU): LeNet-5 on MNIST
    # trains about 1.2x faster with it on a 2-core CPU (bench/lenet_step.py)
    table = cfg.dataset.startswith("csv:")
    model.to(device, memory_format=torch.preserve_format if table else torch.channels_last)
    return model, frozen


def place_data(cfg: TrainConfig, examples: Examples, model: nn.Module, device: torch.device, log) -> RunData:
    """The splits on the device at the model's input size (a segmentation model: the data's own
    height and width), normalised for the model's number of channels, ZCA-whitened if asked."""
    ex = examples
    if isinstance(ex.train, TableData):
        size = (ex.train.x.shape[1],)
        return RunData(ex.train, ex.val, ex.test, (), size, size, ex.mean, ex.std)
    size = tuple(getattr(model, "input_size", get_model_info(cfg.model).input_size))
    folder = isinstance(ex.train, ImageFolder)
    if is_segmentation(cfg.dataset):  # fully convolutional: the data's own height and width
        size = (size[0], *ex.train.images.shape[2:])
    if folder:
        mean, std = grey_normalization(size, ex.mean, ex.std)
    else:
        mean, std = channel_normalization(ex.train.images, size, ex.mean, ex.std)
    if cfg.normalize == "center":  # the 0-255 scale: x * 255 - mean * 255
        std = [1 / 255] * len(std)
    if cfg.normalize == "lecun98":  # 0 -> -0.1, 1 -> 1.175: mean 0 and variance about 1 over MNIST
        mean, std = [0.1 / 1.275] * len(mean), [1 / 1.275] * len(std)
    if folder:
        train = FolderData(
            ex.train, True, size, mean, std, cfg.batch_size, device, on_bad_image=cfg.on_bad_image, log=log
        )
        test = make_data(
            cfg.dataset,
            False,
            size,
            mean,
            std,
            device,
            batch_size=cfg.batch_size,
            classes=cfg.classes,
            per_class=cfg.test_per_class,
            on_bad_image=cfg.on_bad_image,
            log=log,
        )
        val = (
            None
            if ex.val is None
            else FolderData(
                ex.val, False, size, mean, std, cfg.batch_size, device, on_bad_image=cfg.on_bad_image, log=log
            )
        )
        return RunData(train, val, test, ex.classes, size, size, mean, std)
    train = DeviceData(ex.train, size, mean, std, device)
    test = (
        DeviceData(load_segmentation(cfg.dataset, False, cfg.data_dir), size, mean, std, device)
        if is_segmentation(cfg.dataset)
        else make_data(
            cfg.dataset, False, size, mean, std, device, cfg.data_dir, classes=cfg.classes, per_class=cfg.test_per_class
        )
    )
    val = DeviceData(ex.val, size, mean, std, device) if ex.val is not None else None
    if cfg.whiten:  # fitted on the training set, applied to the others, saved for evaluation
        test.zca = train.fit_zca()
        if val is not None:
            val.zca = test.zca
    return RunData(train, val, test, ex.classes, size, tuple(ex.train.images.shape[1:]), mean, std)
