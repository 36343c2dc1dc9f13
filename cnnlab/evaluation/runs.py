"""Evaluating trained runs: accuracy, per-class accuracy, confusion matrix, test-time
augmentation by flips, ensembles of runs, and predictions for image files."""

from __future__ import annotations

import csv
import math
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import atomic_file, load, save_figure
from .errors import CnnlabError, DatasetError, WeightsError
from .data import open_image
from .train import DeviceData, eval_batch_size, eval_batches, fits_by_padding, load_model, make_data, pick_device


def run_config(path: str | Path) -> dict:
    """The resolved configuration of a run directory or of one of its .safetensors files."""
    path = Path(path)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise CnnlabError(f"{path}: not a run directory (no config.json)")
        try:
            saved = json.loads(config.read_text())
        except (OSError, ValueError) as e:
            raise CnnlabError(f"{config}: not readable ({type(e).__name__}: {e})") from None
        if not isinstance(saved, dict) or "model" not in saved:
            raise CnnlabError(f"{config}: not a cnnlab run configuration (no model)")
        return saved
    _, meta = load(path)
    if "config" not in meta:
        raise WeightsError(f"{path}: no cnnlab configuration in its metadata")
    return meta["config"]


def whitening(path: str | Path, cfg: dict, device) -> tuple[Tensor, Tensor] | None:
    """The ZCA transform a run was trained with (whitening.safetensors beside its weights)."""
    if not cfg.get("whiten"):
        return None
    path = Path(path)
    tensors, _ = load((path if path.is_dir() else path.parent) / "whitening.safetensors")
    return tensors["mean"].to(device), tensors["matrix"].to(device)


TTA = ("none", "flip", "10crop", "multicrop")

# GoogLeNet's test scales: the shorter side resized to 256, 288, 320 and 352 for 224-pixel crops
MULTICROP_SCALES = (256 / 224, 288 / 224, 320 / 224, 352 / 224)


def views(x: Tensor, tta: str, data) -> list[Tensor]:
    """The test-time views of a normalised batch: itself; with its mirror image ("flip"); or the
    four corner crops and the centre crop of the 4-pixel padded image, each also mirrored
    ("10crop", AlexNet's test-time scheme at the scale of the training crops)."""
    if tta == "flip":
        return [x, x.flip(3)]
    if tta == "10crop":
        if not isinstance(data, DeviceData) or data.zca is not None:
            raise CnnlabError("10-crop test-time augmentation works on in-memory datasets without whitening")
        p, (h, w) = 4, x.shape[2:]
        padded = (-data.mean / data.std).expand(x.shape[0], -1, h + 2 * p, w + 2 * p).clone()  # black borders
        padded[:, :, p:p + h, p:p + w] = x
        crops = [padded[:, :, dy:dy + h, dx:dx + w] for dy, dx in ((0, 0), (0, 2 * p), (2 * p, 0), (2 * p, 2 * p), (p, p))]
        return crops + [c.flip(3) for c in crops]
    if tta == "multicrop":
        return multicrop(x)
    return [x]


def multicrop(x: Tensor) -> list[Tensor]:
    """GoogLeNet's test-time crops (Szegedy et al. 2015, section 7) at the scale of the input:
    the image resized to 8/7, 9/7, 10/7 and 11/7 of the crop size (256 to 352 for 224); from
    each the four corner crops, the centre crop and the whole image resized to the crop size;
    each also mirrored. GoogLeNet's images were not square, so it also took the left, centre and
    right squares (144 views); a batch here is square at the model's input size, and those three
    squares coincide: 4 x 6 x 2 = 48 views."""
    size = x.shape[2]
    if x.shape[3] != size:
        raise CnnlabError(f"multi-crop needs square images, got {tuple(x.shape[2:])}")
    out = []
    for scale in MULTICROP_SCALES:
        side = round(size * scale)
        big = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        m = side - size
        crops = [big[:, :, dy:dy + size, dx:dx + size] for dy, dx in ((0, 0), (0, m), (m, 0), (m, m), (m // 2, m // 2))]
        crops.append(F.interpolate(big, size=(size, size), mode="bilinear", align_corners=False, antialias=True))
        out += crops + [c.flip(3) for c in crops]
    return out


@torch.no_grad()
def predict_proba(model: nn.Module, data, tta: str = "none", batch_size: int | None = None) -> Tensor:
    """Softmax probabilities for every image, averaged over the test-time views (`views`)."""
    model.eval()
    if batch_size is None and isinstance(data, DeviceData):  # multi-crop holds 8 times more pixels per image
        batch_size = max(1, eval_batch_size(data) // (8 if tta == "multicrop" else 1))
    out = []
    for x, _ in eval_batches(data, batch_size):
        vs = views(x, tta, data)
        out.append(sum(F.softmax(model(v).float(), 1) for v in vs) / len(vs))
    return torch.cat(out)


def metrics(probs: Tensor, labels: Tensor, classes) -> dict:
    """Loss, top-1/top-5 accuracy and error, per-class accuracy and the confusion matrix
    (rows: true class, columns: predicted class)."""
    n, k = probs.shape
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    top = probs.topk(min(5, k), 1).indices
    top1 = (top[:, 0] == labels).float().mean().item()
    top5 = (top == labels.view(-1, 1)).any(1).float().mean().item()
    confusion = torch.bincount(labels * k + top[:, 0], minlength=k * k).view(k, k).cpu()
    per_class = (confusion.diag().float() / confusion.sum(1).clamp_min(1)).tolist()
    return {"images": n, "loss": loss, "top1": top1, "top5": top5, "top1_error": 1 - top1, "top5_error": 1 - top5,
            "per_class": dict(zip(classes, per_class)), "confusion": confusion.tolist()}


def _names(classes, shown: int = 4) -> str:
    """The first class names and how many more: "cat, dog, ship, ... (10)"."""
    names = ", ".join(classes[:shown])
    return f"{names}, ... ({len(classes)})" if len(classes) > shown else names


def evaluate_runs(paths: list[str | Path], dataset: str | None = None, tta: str = "none",
                  data_dir: str | None = None, device: str = "auto", per_class: int | None = None) -> dict:
    """Evaluate one run, or an ensemble of runs (their softmax outputs averaged), on the test split
    (its first `per_class` images of each class, if given)."""
    if tta not in TTA:
        raise CnnlabError(f"tta must be one of {', '.join(TTA)}, got {tta!r}")
    configs = [run_config(p) for p in paths]
    dataset = dataset or configs[0]["dataset"]
    if dataset.startswith("csv:"):
        raise CnnlabError("eval is for classifiers; a regression run's test RMSE and MAE are in its metrics.jsonl")
    dev = pick_device(device)
    probs = None
    for path, cfg in zip(paths, configs):
        model = load_model(path).to(dev)
        trained = tuple(cfg.get("classes", ()))
        same = dataset == cfg["dataset"]  # a run on some of the dataset's classes: those
        data = make_data(dataset, False, tuple(cfg["input_size"]), cfg["mean"], cfg["std"], dev, data_dir,
                         classes=trained if same else (), per_class=per_class)
        if cfg.get("num_classes") != len(data.classes):
            raise CnnlabError(f"{path} predicts {cfg.get('num_classes')} classes but {dataset} has {len(data.classes)}")
        if trained and trained != tuple(data.classes):
            raise CnnlabError(f"{path} was trained on the classes {_names(trained)} of {cfg['dataset']}, but "
                              f"{dataset} has {_names(data.classes)}: evaluate on data with the same classes")
        if isinstance(data, DeviceData):
            data.zca = whitening(path, cfg, dev)
        p = predict_proba(model, data, tta)
        probs = p if probs is None else probs + p
    probs = probs / len(paths)
    result = metrics(probs, data.labels, data.classes)
    result.update(dataset=dataset, runs=[str(p) for p in paths], tta=tta)
    result["_gallery"] = (data, probs)  # for write_gallery; not part of the JSON
    return result


def write_gallery(result: dict, path: Path, count: int = 32) -> Path | None:
    """A PNG of the first `count` misclassified test images, each titled true -> predicted (p)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, probs = result["_gallery"]
    predicted = probs.argmax(1)
    wrong = (predicted != data.labels).nonzero().flatten()[:count].tolist()
    if not wrong:
        return None
    cols = min(8, len(wrong))
    rows = math.ceil(len(wrong) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        if isinstance(data, DeviceData):
            img = data.images[i].permute(1, 2, 0).cpu().numpy()
        else:
            img = np.asarray(data.dataset.read(i))
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
        true, pred = data.classes[data.labels[i]], data.classes[predicted[i]]
        ax.set_title(f"{true} -> {pred}\n{100 * probs[i, predicted[i]].item():.0f}%", fontsize=7)
    fig.suptitle(f"misclassified: {len(wrong)} shown of {int((predicted != data.labels).sum())}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, dpi=110)


def write_confusion(result: dict, out_dir: Path) -> list[Path]:
    """confusion.csv and confusion.png (counts, rows true, columns predicted) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = list(result["per_class"])
    csv_path = out_dir / "confusion.csv"
    with atomic_file(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, result["confusion"]):
            w.writerow([name, *row])
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = np.array(result["confusion"])
    size = max(4, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=90)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(f"{result['dataset']}: top-1 {100 * result['top1']:.2f} %")
    fig.tight_layout()
    return [csv_path, save_figure(fig, out_dir / "confusion.png", dpi=120)]


def image_input(path: str | Path, cfg: dict, zca: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """An image file as the (1, C, H, W) input a run's model takes: resized to the dataset's image
    size, padded (or resized up) to the model's input size, normalised (and whitened) as in training."""
    from PIL import Image

    if len(cfg["input_size"]) != 3:
        raise CnnlabError(f"a run on {cfg['dataset']} takes rows of numbers, not images; its test RMSE and MAE "
                          "are in its metrics.jsonl")
    c, h, w = cfg["input_size"]
    ih, iw = cfg.get("image_size", [c, h, w])[1:]  # the dataset's size; the model's may add padding
    try:
        img = open_image(path, "L" if c == 1 else "RGB").resize((iw, ih), Image.BILINEAR)
    except Exception as e:  # noqa: BLE001  (PIL raises OSError, ValueError, SyntaxError, ... on bad files)
        raise DatasetError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
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

    from .segmentation import is_segmentation

    cfg = run_config(run)
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


def _grid_png(tiles: Tensor, path: Path, title: str, columns: int | None = None) -> Path:
    """Save (N, C, H, W) tiles (C = 1 or 3), each scaled to its own range, as one PNG grid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = tiles.shape[0]
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    lo = tiles.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = tiles.flatten(1).max(1).values.view(-1, 1, 1, 1)
    tiles = ((tiles - lo) / (hi - lo).clamp_min(1e-12)).permute(0, 2, 3, 1).cpu().numpy()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8 + 0.4, rows * 0.8 + 0.6), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(tiles[i].squeeze(-1) if tiles.shape[-1] == 1 else tiles[i], cmap="gray", interpolation="nearest")
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, dpi=100)


def first_conv(model: nn.Module) -> tuple[str, nn.Module]:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) or hasattr(m, "full_weight"):
            return name, m
    raise CnnlabError(f"{type(model).__name__} has no convolution: no filters to show, and feature maps only "
                      "of a --layer NAME that outputs (N, C, H, W)")


def visualize_filters(run: str | Path, out: Path) -> Path:
    """The first convolution's filters as a grid (AlexNet paper, Fig. 3), RGB where they are."""
    model = load_model(run)
    name, conv = first_conv(model)
    weight = conv.full_weight() if hasattr(conv, "full_weight") else conv.weight
    weight = weight.detach()
    if weight.shape[1] not in (1, 3):  # show each input channel separately
        weight = weight.flatten(0, 1).unsqueeze(1)
    return _grid_png(weight, out, f"{name}: {tuple(conv.weight.shape)}")


@torch.no_grad()
def visualize_feature_maps(run: str | Path, image: str | Path, layer: str | None, out: Path) -> Path:
    """The feature maps of `layer` (default: the first convolution) for one image file."""

    cfg = run_config(run)
    model = load_model(run)
    modules = dict(model.named_modules())
    layer = layer or first_conv(model)[0]
    if layer not in modules or not layer:
        import difflib
        convs = [n for n, m in modules.items() if "Conv" in type(m).__name__ and not list(m.children())]
        close = ([n for n in modules if n and layer.split(".")[-1] in n] or difflib.get_close_matches(layer, modules))[:5]
        raise CnnlabError(f"no layer {layer!r} in {cfg['model']}"
                          + (f"; e.g. {', '.join(close)}" if close else
                             f"; its convolutions: {', '.join(convs[:8])}{', ...' if len(convs) > 8 else ''}"))
    x = image_input(image, cfg, whitening(run, cfg, "cpu"))
    seen = {}
    handle = modules[layer].register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    try:
        model(x)
    finally:
        handle.remove()
    maps = seen["out"]
    if not isinstance(maps, Tensor) or maps.ndim != 4:
        raise CnnlabError(f"layer {layer!r} outputs {tuple(getattr(maps, 'shape', ()))}, not feature maps")
    return _grid_png(maps[0, :64].unsqueeze(1), out, f"{layer}: {tuple(maps.shape[1:])} (first 64 maps)")


def evaluate_segmentation_run(path: str | Path, dataset: str | None = None, data_dir: str | None = None,
                              device: str = "auto", out: Path | None = None, count: int = 6) -> dict:
    """Pixel accuracy, mean accuracy, mean IoU and per-class IoU of a segmentation run on the
    test split; with `out`, segmentation.png: input, prediction and ground truth of the first
    `count` test images."""
    from .segmentation import confusion, load_segmentation, render, scores

    cfg = run_config(path)
    dataset = dataset or cfg["dataset"]
    dev = pick_device(device)
    model = load_model(path).to(dev).eval()
    data = DeviceData(load_segmentation(dataset, False, data_dir), tuple(cfg["input_size"]), cfg["mean"], cfg["std"], dev)
    if cfg.get("num_classes") != len(data.classes):
        raise CnnlabError(f"{path} predicts {cfg.get('num_classes')} classes but {dataset} has {len(data.classes)}")
    conf = torch.zeros(len(data.classes), len(data.classes), dtype=torch.long)
    shown = []
    with torch.no_grad():
        for start in range(0, len(data), 100):
            x, y = data.batch(torch.arange(start, min(start + 100, len(data)), device=dev))
            pred = model(x).argmax(1)
            conf += confusion(pred, y, len(data.classes)).cpu()
            if len(shown) < count:
                shown += list(zip(data.images[start:start + count].cpu(), pred.cpu(), y.cpu()))[:count - len(shown)]
    result = {"dataset": dataset, "run": str(path), "images": len(data), **scores(conf)}
    result["iou"] = dict(zip(data.classes, result["iou"]))
    if out is not None:
        images, preds, truths = (torch.stack(t) for t in zip(*shown))
        result["picture"] = str(render(images, preds.to(torch.uint8), truths, Path(out) / "segmentation.png", data.classes))
    return result
