"""What a network sees of an image: per-channel mean and std of each dataset, colour to grey and
back, and the padding or resizing that brings images to a model's input size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import CnnlabError

# Per-channel mean and std of the training images, after scaling to [0, 1].
NORMALIZATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist-scenes": ((0.1004,), (0.2665,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
# ImageNet's: image folders (photos) and Pascal VOC are normalised as the ImageNet networks expect
IMAGENET_NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601: grey from RGB


def dataset_normalization(dataset: str) -> tuple[tuple, tuple] | None:
    """The (mean, std) a dataset is normalised with; None for a name cnnlab does not know."""
    if dataset.startswith(("folder:", "voc:")):
        return IMAGENET_NORMALIZATION
    return NORMALIZATION.get(dataset)


def adapt_images(images: Tensor, size: tuple[int, ...]) -> Tensor:
    """uint8 images made to fit a model of another input (transfer learning): colour to grey
    (ITU-R 601 luma) or grey to colour, and larger images resized down (antialiased)."""
    c, h, w = images.shape[1:]
    if c == 3 and size[0] == 1:
        luma = torch.tensor(LUMA).view(1, 3, 1, 1)
        images = (images.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    elif c == 1 and size[0] == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    elif c != size[0]:
        raise CnnlabError(f"the model takes {size[0]} channels but the images have {c}")
    if h > size[1] and w > size[2]:
        images = (
            F.interpolate(images.float(), size=tuple(size[1:]), mode="bilinear", antialias=True, align_corners=False)
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    return images


def channel_normalization(images: Tensor, size: tuple[int, ...], mean, std) -> tuple[list, list]:
    """`mean` and `std`, unless the (uint8) images are converted to the model's number of channels:
    then the converted training images' own per-channel statistics."""
    if len(mean) == size[0]:
        return list(mean), list(std)
    sample = adapt_images(images[:10_000], size).float().div_(255)
    return sample.mean((0, 2, 3)).tolist(), sample.std((0, 2, 3)).tolist()


def grey_normalization(size: tuple[int, ...], mean, std) -> tuple[list, list]:
    """Photos for a grey network (size[0] == 1) become ITU-R 601 luma: the luma of the colour mean
    and std (for the std exact when the channels move together, as they nearly do); else as given."""
    if size[0] == 1 and len(mean) == 3:
        return [sum(k * v for k, v in zip(LUMA, mean))], [sum(k * v for k, v in zip(LUMA, std))]
    return list(mean), list(std)


def fits_by_padding(h: int, w: int, size: tuple[int, ...]) -> bool:
    """Whether h x w images reach the model's input size by zero padding: by at most 8 pixels,
    the same on both sides (LeNet-5: 28x28 digits in 32x32). Smaller ones are resized up."""
    dh, dw = size[-2] - h, size[-1] - w
    return 0 <= dh <= 8 and 0 <= dw <= 8 and not dh % 2 and not dw % 2
