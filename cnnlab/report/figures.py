"""The report's plots (matplotlib): training curves at step resolution, one run or several
overlaid; layer statistics across epochs; predicted against true values."""

from __future__ import annotations

from ..files import pyplot
from .record import Record

COLOURS = ["#1f5fa8", "#d0632a", "#2b8a3e", "#8e3ea8", "#b3261e", "#5c6b7a", "#c29a00", "#127a7a"]


def curves_figure(records: list[Record]):
    """Three panels: the training loss of every step (each epoch's mean, validation and test loss
    as points), accuracy or error per epoch, the learning rate of every step."""
    plt = pyplot()
    fig, (loss, quality, lr) = plt.subplots(1, 3, figsize=(13.5, 3.9))
    several = len(records) > 1
    for i, r in enumerate(records):
        colour = COLOURS[i % len(COLOURS)]
        tag = f"{r.name}: " if several else ""
        epochs = [row["epoch"] for row in r.history]
        steps = r.step_curve()
        if steps:
            loss.plot(steps[0], steps[1], color=colour, alpha=0.25, lw=0.6)
            window = max(1, len(r.steps[0]["loss"]) // 10)  # a tenth of an epoch
            label = f"{tag}train (each step; the mean of {window})"
            loss.plot(steps[0], running_mean(steps[1], window), color=colour, lw=1.2, label=label)
            lr.plot(steps[0], steps[2], color=colour, lw=1.2, label=r.name if several else None)
        else:
            lr.plot(
                epochs, [row["lr"] for row in r.history], color=colour, marker=".", label=r.name if several else None
            )
        loss.plot(
            [e - 0.5 for e in epochs] if steps else epochs,  # the mean of an epoch's steps, at its middle
            [row["train_loss"] for row in r.history],
            color=colour,
            marker="o",
            ms=4,
            lw=0,
            label=f"{tag}train (epoch mean)",
        )
        for split, style in (("val", "--"), ("test", ":")):
            if f"{split}_loss" in r.history[-1]:
                loss.plot(
                    epochs,
                    [row.get(f"{split}_loss") for row in r.history],
                    color=colour,
                    ls=style,
                    marker="s",
                    ms=3,
                    label=f"{tag}{'validation' if split == 'val' else 'test'}",
                )
        _quality(quality, r, epochs, colour, tag)
    loss.set_title("loss")
    lr.set_title("learning rate" + (" (each step)" if any(r.steps for r in records) else " (end of epoch)"))
    for ax in (loss, quality, lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    losses = [v for r in records for v in (r.step_curve() or [[], [row["train_loss"] for row in r.history]])[1]]
    if min(losses) > 0 and max(losses) / min(losses) > 30:  # a log scale where the loss falls by orders
        loss.set_yscale("log")
    fig.tight_layout()
    return fig


def _quality(ax, r: Record, epochs: list[int], colour: str, tag: str) -> None:
    """Accuracy (top-1 of training, validation and test) per epoch, or mean IoU, or RMSE."""
    key, title, scale = (
        ("miou", "mean IoU (%)", 100)
        if r.task == "segmentation"
        else ("top1", "top-1 accuracy (%)", 100)
        if r.task == "classification"
        else ("rmse", "RMSE", 1)
    )
    for split, style, name in (("train", "-", "train"), ("val", "--", "validation"), ("test", ":", "test")):
        values = [row.get(f"{split}_{key}") for row in r.history]
        if any(v is not None for v in values):
            ax.plot(
                epochs,
                [None if v is None else scale * v for v in values],
                color=colour,
                ls=style,
                marker="o",
                ms=3,
                label=f"{tag}{name}",
            )
    ax.set_title(title)


def layer_stats_figure(rows: list[dict]):
    """The norm of the gradient reaching each layer's weights, input to output, one line per epoch."""
    plt = pyplot()
    epochs = sorted({r["epoch"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for epoch in epochs:
        mine = [r for r in rows if r["epoch"] == epoch and r.get("grad_norm")]
        ax.plot(range(len(mine)), [r["grad_norm"] for r in mine], marker=".", label=f"epoch {epoch}")
        names = [r["layer"] for r in mine]
    ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("gradient norm of the weights")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def scatter_figure(true, predicted, target: str):
    """Predicted against true values of a regression's test rows, with the line of perfect predictions."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.scatter(true, predicted, s=8, alpha=0.6, color=COLOURS[0])
    lo, hi = min(min(true), min(predicted)), max(max(true), max(predicted))
    ax.plot([lo, hi], [lo, hi], color="#888", lw=1, ls="--", label="predicted = true")
    ax.set_xlabel(f"true {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def running_mean(values: list[float], window: int) -> list[float]:
    """The mean of the last `window` values at each point (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out
