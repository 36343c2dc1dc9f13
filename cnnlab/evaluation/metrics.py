"""The metrics, once for every task: top-1 and top-5 accuracy and the confusion matrix of a
classifier, squared and absolute error of a regression, and pixel accuracy and IoU of a
segmentation (void pixels left out), all summed from counts so that a torchrun job's processes
add up to the whole test set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.loaders import eval_batches
from ..data.segmentation import IGNORE
from ..data.tables import TableData
from ..device import Dist, all_reduce


def topk(scores: Tensor, labels: Tensor, k: int = 5) -> tuple[Tensor, Tensor]:
    """The k highest-scoring classes per example (fewer if there are fewer classes) and whether
    each is the label: (indices (N, k), hits (N, k)); hits[:, 0] is top-1, hits.any(1) top-k."""
    indices = scores.topk(min(k, scores.shape[1]), 1).indices
    return indices, indices == labels.view(-1, 1)


def confusion(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Confusion matrix (rows: true class, columns: predicted) of class indices of any shape,
    void pixels (IGNORE) left out."""
    keep = target != IGNORE
    idx = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes**2).view(num_classes, num_classes)


def classification(probs: Tensor, labels: Tensor, classes) -> dict:
    """Loss, top-1/top-5 accuracy and error, per-class accuracy and the confusion matrix of
    predicted probabilities (rows: true class, columns: predicted class)."""
    n, k = probs.shape
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    top, hits = topk(probs, labels)
    top1 = hits[:, 0].float().mean().item()
    top5 = hits.any(1).float().mean().item()
    matrix = confusion(top[:, 0], labels, k).cpu()
    per_class = (matrix.diag().float() / matrix.sum(1).clamp_min(1)).tolist()
    return {
        "images": n,
        "loss": loss,
        "top1": top1,
        "top5": top5,
        "top1_error": 1 - top1,
        "top5_error": 1 - top5,
        "per_class": dict(zip(classes, per_class)),
        "confusion": matrix.tolist(),
    }


def scores(conf: Tensor) -> dict:
    """Pixel accuracy, mean accuracy over classes, mean IoU and per-class IoU (Long et al. §5:
    IoU = n_ii / (t_i + sum_j n_ji - n_ii)); classes absent from both truth and prediction are
    left out of the means."""
    conf = conf.double()
    tp, truth, predicted = conf.diag(), conf.sum(1), conf.sum(0)
    union = truth + predicted - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), torch.nan)
    has_truth = truth > 0
    return {
        "pixel_accuracy": (tp.sum() / conf.sum().clamp_min(1)).item(),
        "mean_accuracy": (tp[has_truth] / truth[has_truth]).mean().item() if has_truth.any() else 0.0,
        "miou": iou[present].mean().item() if present.any() else 0.0,
        "iou": [None if v != v else round(v, 6) for v in iou.tolist()],
    }


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int | None = None, d: Dist = Dist()) -> dict:
    """The test metrics of `model` on all of `data` (summed over a torchrun job): loss, top-1 and
    top-5 accuracy of a classifier; MSE, RMSE and MAE of a regression; loss per labelled pixel,
    pixel accuracy (also as "top1"), mean accuracy and mean IoU of a segmentation."""
    model.eval()
    if isinstance(data, TableData):
        err = model(data.x).float().squeeze(1) - data.labels
        mse = err.pow(2).mean().item()
        return {"loss": mse, "rmse": mse**0.5, "mae": err.abs().mean().item()}
    if data.labels.ndim == 3:
        conf, loss = segmentation_counts(model, data, d)
        s = scores(conf.cpu())
        loss = loss.item() / max(1, conf.sum().item())
        return {"loss": loss, "top1": s["pixel_accuracy"], "miou": s["miou"], "mean_accuracy": s["mean_accuracy"]}
    sums = None
    for x, y in eval_batches(data, batch_size, d):
        logits = model(x).float()
        _, hits = topk(logits, y)
        batch = torch.stack(
            [
                F.cross_entropy(logits, y, reduction="sum"),
                hits[:, 0].sum().float(),
                hits.any(1).sum().float(),
                torch.tensor(float(len(y)), device=y.device),
            ]
        ).double()
        sums = batch if sums is None else sums + batch
    loss, top1, top5, n = all_reduce(sums, d).tolist()
    return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n}


@torch.no_grad()
def segmentation_counts(model: nn.Module, data, d: Dist = Dist(), batch_size: int = 100) -> tuple[Tensor, Tensor]:
    """The pixel confusion matrix and the summed cross-entropy of the labelled pixels (void left
    out), over a torchrun job."""
    model.eval()
    num_classes = len(data.classes)
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long, device=data.labels.device)
    loss = torch.zeros((), dtype=torch.float64, device=data.labels.device)
    for x, y in eval_batches(data, batch_size, d):
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum").double()
        conf += confusion(logits.argmax(1), y, num_classes)
    return all_reduce(conf, d), all_reduce(loss, d)
