"""Data: the datasets as tensors (MNIST, Fashion-MNIST, CIFAR-10/100, MNIST scenes, Pascal VOC),
image folders, numeric tables, their normalisation and augmentation, and the batches training
and evaluation draw from them."""

from ..errors import DatasetError
from .augment import AUGMENTATIONS
from .datasets import (
    CIFAR10_CLASSES,
    CIFAR_BINARY,
    DATASETS,
    Split,
    data_root,
    download,
    held_out,
    load_cifar10_zip,
    load_cifar_binary,
    load_dataset,
    read_idx,
    split_off,
    subset,
)
from .folders import IMAGE_EXTENSIONS, ImageFolder, open_image
from .loaders import DeviceData, FolderData, eval_batches, make_data
from .normalization import IMAGENET_NORMALIZATION, NORMALIZATION
from .segmentation import IGNORE, is_segmentation, load_segmentation, load_voc, mnist_scenes
from .tables import TableData, load_csv

__all__ = [
    "AUGMENTATIONS",
    "CIFAR10_CLASSES",
    "CIFAR_BINARY",
    "DATASETS",
    "DatasetError",
    "DeviceData",
    "FolderData",
    "IGNORE",
    "IMAGE_EXTENSIONS",
    "IMAGENET_NORMALIZATION",
    "ImageFolder",
    "NORMALIZATION",
    "Split",
    "TableData",
    "data_root",
    "download",
    "eval_batches",
    "held_out",
    "is_segmentation",
    "load_cifar10_zip",
    "load_cifar_binary",
    "load_csv",
    "load_dataset",
    "load_segmentation",
    "load_voc",
    "make_data",
    "mnist_scenes",
    "open_image",
    "read_idx",
    "split_off",
    "subset",
]
