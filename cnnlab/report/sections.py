"""The sections of a report, each a function returning HTML: what made a run, its curves, how it
does on its test split (per class, confusion, mistakes), what its first layer and its feature
maps look like, its architecture, its layer statistics; for several runs their comparison and
their curves together."""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..analysis import analyze
from ..data.loaders import eval_batches
from ..data.tables import table_data
from ..errors import CnnlabError
from ..evaluation.plots import confusion_figure, grid_figure, shown_image
from ..evaluation.runs import evaluate_runs, evaluate_segmentation_run
from ..evaluation.visualize import first_filters
from .figures import curves_figure, layer_stats_figure, scatter_figure
from .page import Markup, esc, figure, img, inline_svg, png_of, table
from .record import Record

SHOWN_MISTAKES = 24


def overview(r) -> str:
    """The command and settings that made the run, its versions, data, time and hardware, and its
    final metrics."""
    cfg, last = r.config, r.history[-1]
    facts = [
        ["command", Markup(f"<code>{esc(r.command())}</code>")],
        ["model", cfg["model"]],
        [
            "dataset",
            f"{cfg['dataset']} ({len(cfg.get('classes') or [])} classes)" if cfg.get("classes") else cfg["dataset"],
        ],
        ["epochs", f"{last['epoch']} of {cfg['epochs']}"],
        [
            "training time",
            f"{last.get('time', 0):.1f} s ({last.get('images_per_s', 0):,.0f} images/s in the last epoch)",
        ],
        ["cnnlab", f"{cfg.get('cnnlab_version', '?')} (git {str(cfg.get('git_hash') or 'unknown')[:10]})"],
        ["hardware", f"{cfg.get('hardware', 'not recorded')}, torch {cfg.get('torch_version', '?')}"],
        ["started", cfg.get("started", "not recorded")],
    ]
    metrics = [[_metric_name(k), _metric(k, v)] for k, v in last.items() if k not in ("epoch", "time", "images_per_s")]
    settings = [[k, _fmt(v)] for k, v in cfg.items() if k != "classes"]
    return (
        table(None, facts)
        + "<h3>Final metrics</h3>"
        + table(["metric", "value"], metrics, numeric={1})
        + f"<details><summary>All settings ({len(settings)})</summary>"
        + table(["setting", "value"], settings, scroll=True)
        + "</details>"
    )


def _metric_name(key: str) -> str:
    split, _, what = key.partition("_")
    names = {"top1": "top-1", "top5": "top-5", "miou": "mean IoU", "rmse": "RMSE", "mae": "MAE", "mse": "MSE"}
    where = {"val": "validation", "lr": "learning rate at the end"}.get(split, split)
    return f"{where} {names.get(what, what.replace('_', ' '))}".strip()


def _metric(key: str, v) -> str:
    if key.endswith(("top1", "top5", "miou", "accuracy")) and isinstance(v, float):
        return f"{100 * v:.2f} %"
    return _fmt(v)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return ", ".join(map(str, v)) if isinstance(v, list) else str(v)


def evaluated(r, device: str, data_dir: str | None) -> dict:
    """`cnnlab eval`'s result for the run's weights on its test split, with its test data and the
    predicted probabilities (`data`, `probs`) for the sections that show images."""
    result = evaluate_runs([r.weights], data_dir=data_dir, device=device, per_class=r.config.get("test_per_class"))
    result["data"], result["probs"] = result.pop("_gallery")
    return result


def classification(r, result: dict) -> list[tuple[str, str]]:
    """Per-class accuracy, the confusion matrix and the misclassified test images with their top-3
    guesses, from the run's final weights on its test split (`evaluated`)."""
    data, probs = result["data"], result["probs"]
    classes = list(result["per_class"])
    counts = np.array(result["confusion"]).sum(1)
    rows = [
        [name, int(n), Markup(f'<span class="bar" style="width:{120 * acc:.0f}px"></span> {100 * acc:.1f} %')]
        for (name, acc), n in zip(result["per_class"].items(), counts)
    ]
    title = f"{len(data)} test images: top-1 {100 * result['top1']:.2f} %, top-5 {100 * result['top5']:.2f} %"
    weights = "the final weights" if r.finished else "the weights of the last checkpoint: the run has not finished"
    conf = figure(img(png_of(confusion_figure(result["confusion"], classes, title), dpi=90), "confusion matrix"))
    return [
        (
            "Per-class accuracy",
            f"<p>{esc(title)} ({weights}).</p>" + table(["class", "images", "top-1"], rows, {1}),
        ),
        ("Confusion matrix", conf + "<p>Rows: the true class; columns: the predicted one.</p>"),
        ("Misclassified test images", mistakes(data, probs, classes)),
    ]


def mistakes(data, probs: torch.Tensor, classes: list[str]) -> str:
    """The first misclassified test images, each with its true class and the top-3 guesses."""
    from PIL import Image

    predicted = probs.argmax(1)
    wrong = (predicted != data.labels).nonzero().flatten()
    tiles = []
    for i in wrong[:SHOWN_MISTAKES].tolist():
        picture = shown_image(data, i)
        if picture.dtype != np.uint8:
            picture = (picture.clip(0, 1) * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(picture.squeeze(-1) if picture.shape[-1] == 1 else picture).save(buf, format="PNG")
        top = probs[i].topk(min(3, probs.shape[1]))
        guesses = "<br>".join(
            f"{esc(classes[k])}: {100 * p:.0f} %" for p, k in zip(top.values.tolist(), top.indices.tolist())
        )
        true = classes[int(data.labels[i])]
        picture = img(buf.getvalue(), f"test image {i}: {true}")
        tiles.append(f'<div class="tile">{picture}<br><b>{esc(true)}</b><br>{guesses}</div>')
    if not tiles:
        return "<p>No test image is misclassified.</p>"
    return (
        f"<p>{len(tiles)} of {len(wrong)} misclassified test images: the true class in bold, the model's three "
        "best guesses below it.</p>" + f'<div class="tiles">{"".join(tiles)}</div>'
    )


@torch.no_grad()
def inside(model: nn.Module, data) -> list[tuple[str, str]]:
    """The first layer's filters, and the feature maps of the first test image of `data` at a few depths."""
    try:
        name, _, weight = first_filters(model)
    except CnnlabError:  # a network without convolutions (an MLP): nothing to show here
        return []
    weight = weight.float()
    if weight.shape[1] not in (1, 3):
        weight = weight[:, :1]
    title = f"{name}: {tuple(weight.shape)}"
    filters = figure(
        img(png_of(grid_figure(weight[:96], title, columns=min(16, len(weight)))), "filters"),
        "Each filter scaled to its own range; colour where the input has three channels.",
    )
    x = next(iter(eval_batches(data, 1)))[0][:1].cpu()
    return [("First layer's filters", filters), ("Feature maps", feature_maps(model, x))]


def feature_maps(model: nn.Module, x: torch.Tensor, depths: int = 3, maps: int = 16) -> str:
    """The first `maps` channels of the outputs of `depths` layers spread from input to output."""
    seen = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o, n=n: seen.append((n, o)))
        for n, m in model.named_modules()
        if n and not list(m.children())
    ]
    try:
        model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    spatial = [(n, o) for n, o in seen if isinstance(o, torch.Tensor) and o.ndim == 4 and min(o.shape[2:]) > 1]
    if not spatial:
        return "<p>No layer outputs feature maps.</p>"
    picks = sorted({round(k * (len(spatial) - 1) / max(1, depths - 1)) for k in range(depths)})
    parts = []
    for k in picks:
        name, out = spatial[k]
        title = f"{name} ({type(dict(model.named_modules())[name]).__name__}): {'x'.join(map(str, out.shape[1:]))}"
        fig = grid_figure(out[0, :maps].unsqueeze(1).float(), title, columns=8, tile_inches=1.0)
        parts.append(figure(img(png_of(fig, dpi=80), f"feature maps of {name}")))
    return "<p>The first test image, through the trained network (each map scaled to its own range).</p>" + "".join(
        parts
    )


STYLE_OF = {"lenet": "maps", "alexnet": "maps", "cnn4": "maps", "mlp": "maps", "nin": "maps"}


def architecture(r, model: nn.Module) -> str:
    """The diagram (maps for the LeNet/AlexNet family, blocks for VGG, GoogLeNet, ResNets and FCNs)
    and the analyser's table of every layer."""
    from ..draw import draw

    size = tuple(r.config["input_size"])
    style = next((s for prefix, s in STYLE_OF.items() if r.config["model"].startswith(prefix)), "blocks")
    try:
        svg = draw(model, size, style=style)
    except Exception:  # a network the lectures' styles do not know: its data-flow graph
        svg = draw(model, size, style="graph")
    result = analyze(model, size)
    rows = [
        [
            row.name,
            row.type,
            "x".join(map(str, row.output_shape)),
            row.params,
            row.macs,
            "-" if row.receptive_field is None else "x".join(map(str, row.receptive_field)),
        ]
        for row in result.layers
    ]
    t = result.totals
    return (
        figure(inline_svg(svg))
        + f"<p>{t.get('params', 0):,} parameters, {t.get('macs', 0):,} multiply-adds per image.</p>"
        + table(
            ["layer", "type", "output", "params", "MACs", "receptive field"],
            [[a, b, c, f"{d:,}", f"{e:,}", f] for a, b, c, d, e, f in rows],
            {3, 4},
            scroll=True,
        )
    )


def layer_statistics(r) -> str:
    last = max(row["epoch"] for row in r.layer_stats)
    rows = [
        [
            row["layer"],
            row["type"],
            f"{row['out_mean']:.3g}",
            f"{row['out_std']:.3g}",
            "-" if row.get("dead_fraction") is None else f"{100 * row['dead_fraction']:.1f} %",
            "-" if row.get("grad_norm") is None else f"{row['grad_norm']:.2e}",
        ]
        for row in r.layer_stats
        if row["epoch"] == last
    ]
    return (
        figure(
            img(png_of(layer_stats_figure(r.layer_stats)), "gradient norms per layer"),
            "Vanishing gradients show as norms falling towards the input.",
        )
        + f"<h3>Epoch {last}, one batch</h3>"
        + table(["layer", "type", "output mean", "output std", "dead ReLUs", "gradient norm"], rows, {2, 3, 4, 5}, True)
    )


def segmentation(r, device: str, data_dir: str | None) -> list[tuple[str, str]]:
    """Sample test images with their true and predicted masks, and the IoU of every class."""
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate_segmentation_run(r.weights, data_dir=data_dir, device=device, out=Path(tmp), count=4)
        picture = Path(result["picture"]).read_bytes()
    rows = [[name, "-" if v is None or math.isnan(v) else f"{100 * v:.1f} %"] for name, v in result["iou"].items()]
    return [
        (
            "Predicted masks",
            figure(img(picture, "input, prediction, ground truth"), "Input, prediction, ground truth."),
        ),
        (
            "IoU per class",
            f"<p>Mean IoU {100 * result['miou']:.2f} %, pixel accuracy {100 * result['pixel_accuracy']:.2f} %.</p>"
            + table(["class", "IoU"], rows, {1}),
        ),
    ]


@torch.no_grad()
def regression(r, model: nn.Module) -> str:
    """The test rows' predicted against true values."""
    cfg = r.config
    test = table_data(cfg["dataset"][4:], cfg["target"], torch.device("cpu"), cfg.get("val_split") or 0.0)[1]
    predicted, true = model.eval()(test.x).flatten(), test.labels.flatten()
    rmse = (predicted - true).pow(2).mean().sqrt().item()
    return figure(
        img(png_of(scatter_figure(true.tolist(), predicted.tolist(), cfg["target"])), "predicted against true"),
        f"{len(true)} test rows, RMSE {rmse:.4g}.",
    )


def curves(records: list[Record]) -> str:
    steps = all(r.steps for r in records)
    return figure(
        img(png_of(curves_figure(records), dpi=90), "training curves"),
        "The training loss of every step (faint), its running mean and each epoch's mean (at the "
        "epoch's middle; the loss of the batches as they were seen, augmented, with dropout on), the "
        "test loss after each epoch, and the learning rate of every step."
        if steps
        else "Per epoch: this run recorded no steps (it was trained by an older version).",
    )


def headline(r: Record) -> str:
    """The final test result in a few words."""
    last = r.history[-1]
    if r.task == "segmentation":
        return f"test mean IoU {100 * last['test_miou']:.2f} %"
    if r.task == "classification":
        return f"test top-1 {100 * last['test_top1']:.2f} % after {last['epoch']} epochs"
    return f"test RMSE {last['test_rmse']:.4g} after {last['epoch']} epochs"


def comparison(records: list[Record]) -> str:
    """One row per run, the way TensorBoard lists runs: what it was and where it ended."""
    rows = []
    for r in records:
        last, cfg = r.history[-1], r.config
        quality = "test_miou" if r.task == "segmentation" else "test_top1" if r.task == "classification" else None
        best = (
            max(r.history, key=lambda row: row[quality])
            if quality
            else min(r.history, key=lambda row: row["test_rmse"])
        )
        rows.append(
            [
                r.name,
                cfg["model"],
                cfg["dataset"],
                f"{cfg['optimizer']} lr {cfg['lr']:g}, {cfg['schedule']}",
                last["epoch"],
                f"{last['train_loss']:.4f}",
                f"{last['test_loss']:.4f}",
                headline(r),
                f"{100 * best[quality]:.2f} % (epoch {best['epoch']})"
                if quality
                else f"{best['test_rmse']:.4g} (epoch {best['epoch']})",
                f"{last.get('time', 0):.0f} s",
            ]
        )
    return table(
        ["run", "model", "dataset", "optimiser", "epochs", "train loss", "test loss", "final", "best", "time"],
        rows,
        numeric={4, 5, 6, 9},
    )
