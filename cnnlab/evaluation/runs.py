"""Evaluating trained runs on their test split: one run or an ensemble of runs (softmax outputs
averaged), with test-time augmentation; segmentation runs by pixel accuracy and IoU; and
predictions for image files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.folders import IMAGE_EXTENSIONS, read_image_file
from ..data.loaders import DeviceData, make_data
from ..data.normalization import fits_by_padding
from ..data.segmentation import is_segmentation, load_segmentation
from ..device import pick_device
from ..errors import CnnlabError
from ..factory import load_model
from ..runs import read_config, whitening
from .metrics import classification, scores, segmentation_counts
from .plots import render
from .tta import TTA, predict_proba


def _names(classes, shown: int = 4) -> str:
    """The first class names and how many more: "cat, dog, ship, ... (10)"."""
    names = ", ".join(classes[:shown])
    return f"{names}, ... ({len(classes)})" if len(classes) > shown else names


def evaluate_runs(
    paths: list[str | Path],
    dataset: str | None = None,
    tta: str = "none",
    data_dir: str | None = None,
    device: str = "auto",
    per_class: int | None = None,
) -> dict:
    """Evaluate one run, or an ensemble of runs (their softmax outputs averaged), on the test split
    (its first `per_class` images of each class, if given)."""
    if tta not in TTA:
        raise CnnlabError(f"tta must be one of {', '.join(TTA)}, got {tta!r}")
    if not paths:
        raise CnnlabError("give at least one run to evaluate")
    configs = [read_config(p) for p in paths]
    dataset = dataset or configs[0]["dataset"]
    if dataset.startswith("csv:"):
        raise CnnlabError("eval is for classifiers; a regression run's test RMSE and MAE are in its metrics.jsonl")
    dev = pick_device(device)
    probs = None
    for path, cfg in zip(paths, configs):
        model = load_model(path).to(dev)
        trained = tuple(cfg.get("classes", ()))
        same = dataset == cfg["dataset"]  # a run on some of the dataset's classes: those
        data = make_data(
            dataset,
            False,
            tuple(cfg["input_size"]),
            cfg["mean"],
            cfg["std"],
            dev,
            data_dir,
            classes=trained if same else (),
            per_class=per_class,
        )
        if cfg.get("num_classes") != len(data.classes):
            raise CnnlabError(f"{path} predicts {cfg.get('num_classes')} classes but {dataset} has {len(data.classes)}")
        if trained and trained != tuple(data.classes):
            raise CnnlabError(
                f"{path} was trained on the classes {_names(trained)} of {cfg['dataset']}, but "
                f"{dataset} has {_names(data.classes)}: evaluate on data with the same classes"
            )
        if isinstance(data, DeviceData):
            data.zca = whitening(path, cfg, dev)
        p = predict_proba(model, data, tta)
        probs = p if probs is None else probs + p
    probs = probs / len(paths)
    result = classification(probs, data.labels, data.classes)
    result.update(dataset=dataset, runs=[str(p) for p in paths], tta=tta)
    result["_gallery"] = (data, probs)  # for write_gallery; not part of the JSON
    return result


def image_input(path: str | Path, cfg: dict, zca: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """An image file as the (1, C, H, W) input a run's model takes: resized to the dataset's image
    size, padded (or resized up) to the model's input size, normalised (and whitened) as in training."""
    from PIL import Image

    if len(cfg["input_size"]) != 3:
        raise CnnlabError(
            f"a run on {cfg['dataset']} takes rows of numbers, not images; its test RMSE and MAE "
            "are in its metrics.jsonl"
        )
    c, h, w = cfg["input_size"]
    ih, iw = cfg.get("image_size", [c, h, w])[1:]  # the dataset's size; the model's may add padding
    img = read_image_file(path, "L" if c == 1 else "RGB").resize((iw, ih), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).reshape(ih, iw, c).permute(2, 0, 1)[None]
    if fits_by_padding(ih, iw, (h, w)):
        x = F.pad(x, ((w - iw) // 2, (w - iw) // 2, (h - ih) // 2, (h - ih) // 2))
    else:  # as in training: much smaller images are resized up
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(cfg["mean"]).view(1, -1, 1, 1)) / torch.tensor(cfg["std"]).view(1, -1, 1, 1)
    if zca is not None:
        x = ((x.flatten(1) - zca[0]) @ zca[1]).view(1, c, h, w)
    return x


@torch.no_grad()
def predict_images(run: str | Path, images: list[str | Path], k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k classes with probabilities for image files, resized to the model's input size."""
    cfg = read_config(run)
    if is_segmentation(str(cfg.get("dataset", ""))):
        raise CnnlabError(f"{run} is a segmentation run; `cnnlab eval {run}` draws its predictions")
    model = load_model(run)
    zca = whitening(run, cfg, "cpu")
    out = []
    for path in images:
        p = F.softmax(model(image_input(path, cfg, zca)).float(), 1)[0]
        top = p.topk(min(k, len(p)))
        out.append([(cfg["classes"][i], v) for v, i in zip(top.values.tolist(), top.indices.tolist())])
    return out


def evaluate_segmentation_run(
    path: str | os.PathLike,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    out: Path | None = None,
    count: int = 6,
) -> dict:
    """Pixel accuracy, mean accuracy, mean IoU and per-class IoU of a segmentation run on the
    test split; with `out`, segmentation.png: input, prediction and ground truth of the first
    `count` test images."""
    cfg = read_config(path)
    dataset = dataset or cfg["dataset"]
    dev = pick_device(device)
    model = load_model(path).to(dev).eval()
    data = DeviceData(
        load_segmentation(dataset, False, data_dir), tuple(cfg["input_size"]), cfg["mean"], cfg["std"], dev
    )
    if cfg.get("num_classes") != len(data.classes):
        raise CnnlabError(f"{path} predicts {cfg.get('num_classes')} classes but {dataset} has {len(data.classes)}")
    conf, _ = segmentation_counts(model, data)
    result = {"dataset": dataset, "run": str(path), "images": len(data), **scores(conf.cpu())}
    result["iou"] = dict(zip(data.classes, result["iou"]))
    if out is not None:
        shown = torch.arange(min(count, len(data)), device=dev)
        x, y = data.batch(shown)
        with torch.no_grad():
            pred = model(x).argmax(1)
        picture = render(
            data.images[shown].cpu(), pred.cpu().to(torch.uint8), y.cpu(), Path(out) / "segmentation.png", data.classes
        )
        result["picture"] = str(picture)
    return result


def unmirrored(runs: list[str | os.PathLike]) -> list[str | os.PathLike]:
    """The runs trained without flipped images (image folders are always flipped): test-time
    augmentation adds mirror images, which can hurt where mirroring changes the class."""
    return [
        r
        for r in runs
        if not read_config(r)["dataset"].startswith("folder:") and "flip" not in read_config(r).get("augment", ())
    ]


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Image files, a folder standing for the image files in it (by name)."""
    images = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(p for p in given.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                raise CnnlabError(f"{given}: a folder without image files ({', '.join(IMAGE_EXTENSIONS)})")
            images += found
        else:
            images.append(given)
    return images
