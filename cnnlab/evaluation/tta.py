"""Test-time augmentation: a network scored on several views of each test image (its mirror
image; AlexNet's ten crops; GoogLeNet's 48 crops at four scales), their softmax outputs averaged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.loaders import DeviceData, eval_batch_size, eval_batches
from ..errors import CnnlabError

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
        padded[:, :, p : p + h, p : p + w] = x
        crops = [
            padded[:, :, dy : dy + h, dx : dx + w]
            for dy, dx in ((0, 0), (0, 2 * p), (2 * p, 0), (2 * p, 2 * p), (p, p))
        ]
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
        crops = [
            big[:, :, dy : dy + size, dx : dx + size] for dy, dx in ((0, 0), (0, m), (m, 0), (m, m), (m // 2, m // 2))
        ]
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
