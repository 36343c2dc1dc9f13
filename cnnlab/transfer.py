"""CNN features with a linear classifier on top, and the lectures' transfer-learning decision matrix.

`features()` runs a network with pretrained weights over a dataset and keeps the penultimate
layer's output (the input of the classifier, `forward_head(..., pre_logits=True)`);
`linear_classifier()` fits a linear SVM or a logistic regression (scikit-learn) on the training
features and scores it on the test features. `advise()` answers "do I have to train from scratch?"
from the amount of data and its similarity to the data the weights were trained on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from .data.datasets import load_dataset, subset
from .data.folders import ImageFolder
from .data.loaders import DeviceData, FolderData, eval_batches
from .data.normalization import IMAGENET_NORMALIZATION, NORMALIZATION, channel_normalization, grey_normalization
from .device import pick_device
from .errors import CnnlabError
from .factory import create_model, input_normalization
from .files import atomic_file, check_output
from .registry import get_model_info

CLASSIFIERS = ("svm", "logreg")


@torch.no_grad()
def extract(model: torch.nn.Module, data: DeviceData, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate-layer features (N, D) and labels (N,) of every image in `data`."""
    model.eval()
    feats, labels = [], []
    for x, y in eval_batches(data, batch_size):
        f = model.forward_head(model.forward_features(x), pre_logits=True)
        feats.append(f.flatten(1).float().cpu())
        labels.append(y.cpu())
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


def features(
    model_name: str,
    weights: str | None,
    dataset: str,
    out: str | os.PathLike | None = None,
    classes=(),
    train_per_class: int | None = None,
    data_dir: str | None = None,
    test_per_class: int | None = None,
    device: str = "auto",
    model_kwargs: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Features of the training and test split of `dataset` (only `classes`, and the first
    `train_per_class` / `test_per_class` images of each, if given); written to `out` (.npz) if
    given (an existing file only with `overwrite`). An image folder's images of both splits are
    resized and centre-cropped (no random crops)."""
    if out is not None:
        check_output(out, overwrite)
    folder = dataset.startswith("folder:")
    if not folder and dataset not in NORMALIZATION:
        raise CnnlabError(f"features work on {', '.join(NORMALIZATION)} and folder:PATH, got {dataset!r}")
    info = get_model_info(model_name)
    model = create_model(model_name, weights=weights, **(model_kwargs or {}))
    if getattr(model, "dense", False):
        raise CnnlabError(f"{model_name} scores every pixel; features are of classification networks")
    default = IMAGENET_NORMALIZATION if folder else NORMALIZATION[dataset]
    mean, std = (input_normalization(weights, model_name) if weights else None) or default
    size = tuple(getattr(model, "input_size", info.input_size))
    dev = pick_device(device)
    model.to(dev)
    start = time.perf_counter()
    splits = {}
    for name, train, per_class in (("train", True, train_per_class), ("test", False, test_per_class)):
        if folder:
            images = ImageFolder(dataset[len("folder:") :], train).select(classes, per_class)
            data = FolderData(images, False, size, *grey_normalization(size, mean, std), 128, dev)
        else:
            split = subset(load_dataset(dataset, train=train, data_dir=data_dir), classes, per_class)
            if train:
                mean, std = channel_normalization(split.images, size, mean, std)
            data = DeviceData(split, size, mean, std, dev)
        splits[name] = extract(model, data)
    result = {
        "train_x": splits["train"][0],
        "train_y": splits["train"][1],
        "test_x": splits["test"][0],
        "test_y": splits["test"][1],
        "classes": np.array(data.classes),
        "seconds": time.perf_counter() - start,
    }
    if out is not None:
        _save_npz(Path(out), {k: v for k, v in result.items() if k != "seconds"})
    return result


def _save_npz(path: Path, arrays: dict) -> None:
    with atomic_file(path, ".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def linear_classifier(feats: dict, kind: str = "svm", c: float = 1.0) -> dict:
    """Fit a linear SVM or logistic regression on standardised training features; test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if kind not in CLASSIFIERS:
        raise CnnlabError(f"classifier must be svm or logreg, got {kind!r}")
    if len(np.unique(feats["train_y"])) < 2:
        raise CnnlabError(
            "the training features hold one class, and one class is nothing to tell apart; give two or more (--classes)"
        )
    head = LinearSVC(C=c, max_iter=5000) if kind == "svm" else LogisticRegression(C=c, max_iter=2000)
    clf = make_pipeline(StandardScaler(), head)
    start = time.perf_counter()
    clf.fit(feats["train_x"], feats["train_y"])
    return {
        "classifier": kind,
        "train_images": len(feats["train_y"]),
        "feature_dim": feats["train_x"].shape[1],
        "train_accuracy": float(clf.score(feats["train_x"], feats["train_y"])),
        "test_accuracy": float(clf.score(feats["test_x"], feats["test_y"])),
        "seconds": time.perf_counter() - start,
    }


# The lectures' (CS231n) matrix: rows = how much labelled data, columns = how similar to the
# data the network was trained on. "Small" here: under 1,000 labelled images per class.
SMALL = 1000


def advise(samples_per_class: int, similarity: str) -> dict:
    """The decision-matrix recommendation: strategy, why, and the command to run."""
    if similarity not in ("high", "low"):
        raise CnnlabError(f"similarity must be high or low, got {similarity!r}")
    if samples_per_class < 1:
        raise CnnlabError(f"samples per class must be at least 1, got {samples_per_class}")
    small = samples_per_class < SMALL
    if small and similarity == "high":
        strategy, why = (
            "feature-extractor",
            (
                "little data, similar to the pretraining data: the top layers' "
                "features already fit; train only a linear classifier on them"
            ),
        )
        command = "cnnlab features MODEL --weights imagenet --dataset DATA --classifier svm"
    elif small:
        strategy, why = (
            "fine-tune-top",
            (
                "little data, unlike the pretraining data: the top layers are too "
                "specific to the old task and too many parameters for the data; keep "
                "the early, generic layers fixed and retrain the rest (or a linear "
                "classifier on features from an earlier layer)"
            ),
        )
        command = (
            "cnnlab finetune MODEL --weights imagenet --dataset DATA --strategy fine-tune-top --freeze-until LAYER"
        )
    elif similarity == "high":
        strategy, why = (
            "fine-tune-top",
            ("plenty of similar data: fine-tune the top layers (or all of them) with a small learning rate"),
        )
        command = "cnnlab finetune MODEL --weights imagenet --dataset DATA --strategy fine-tune-top --head-lr-mult 10"
    else:
        strategy, why = (
            "fine-tune-all",
            (
                "plenty of data, unlike the pretraining data: fine-tune every layer "
                "from the pretrained weights (they still beat a random start), or "
                "train from scratch with enough data"
            ),
        )
        command = "cnnlab finetune MODEL --weights imagenet --dataset DATA --strategy fine-tune-all"
    return {
        "samples_per_class": samples_per_class,
        "similarity": similarity,
        "data": "small" if small else "large",
        "strategy": strategy,
        "why": why,
        "command": command,
    }
