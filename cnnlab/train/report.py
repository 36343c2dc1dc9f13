"""What a run tells as it trains: a line per epoch, a progress bar, TensorBoard scalars and, at
the end, the curves of loss, accuracy and learning rate."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..files import pyplot, save_figure


def quality(m: dict, classes: int) -> str:
    """Metrics in words; top-5 only where there are more than 5 classes (else it is 100 % by definition)."""
    return (
        f"pixel accuracy {100 * m['top1']:.2f}%  mean IoU {100 * m['miou']:.2f}%"
        if "miou" in m
        else f"top-1 {100 * m['top1']:.2f}%" + (f"  top-5 {100 * m['top5']:.2f}%" if classes > 5 else "")
        if "top1" in m
        else f"RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}"
    )


def early_stop_line(best: dict, patience: int, saved: bool, classes: int) -> str:
    on = "validation" if "val_loss" in best else "test"
    what = "mean IoU" if "test_miou" in best else "top-1" if "test_top1" in best else "loss"
    return (
        f"early stop: {on} {what} has not improved for {patience} epoch{'s' * (patience != 1)}; the best, epoch "
        f"{best['epoch']} (test {quality({k[5:]: v for k, v in best.items() if k.startswith('test_')}, classes)})"
        + (", is in best.safetensors" if saved else "")
    )


def epoch_line(row: dict, epochs: int, classes: int) -> str:
    """The log line of one epoch: its losses and metrics, speed and time so far."""
    val = {k[4:]: v for k, v in row.items() if k.startswith("val_")}
    test = {k[5:]: v for k, v in row.items() if k.startswith("test_")}
    return (
        f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f}"
        + (f"  val loss {val['loss']:.4f}  {quality(val, classes)}" if val else "")
        + f"  test loss {test['loss']:.4f}  {quality(test, classes)}  {row['images_per_s']:.0f} img/s  "
        f"{row['time']:.1f}s"
    )


def progress_bar(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, disable=not sys.stderr.isatty(), unit="batch")


def tensorboard(path: Path):
    """A TensorBoard writer for the run's per-epoch metrics, when TensorBoard is installed."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def plot_history(history: list[dict], path: Path) -> None:
    """Loss, accuracy and learning-rate curves per epoch, as one PNG."""
    plt = pyplot()
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
    b.set_title(
        "test (%)" if "test_miou" in history[0] else "test accuracy (%)" if "test_top1" in history[0] else "test error"
    )
    if val:
        b.set_title(b.get_title().replace("test", "validation and test"))
    b.legend()
    c.plot(epochs, [r["lr"] for r in history])
    c.set_title("learning rate (end of epoch)")
    for ax in (a, b, c):
        ax.set_xlabel("epoch")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
