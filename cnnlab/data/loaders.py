"""Where batches come from. Small datasets live on the training device as one uint8 tensor and
come out normalised (and augmented) batch by batch there (`DeviceData`), so no DataLoader or PIL
sits in the loop; image folders stream through a DataLoader with worker processes and pinned
memory (`FolderData`); numeric tables are `cnnlab.data.tables.TableData`."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor

from ..device import Dist
from ..errors import CnnlabError, DatasetError
from .augment import augment_pixels, cutout
from .datasets import Split, load_dataset, subset
from .folders import ImageFolder, collate_readable
from .normalization import adapt_images, fits_by_padding


class DeviceData:
    """A split held on the device as uint8 at the model's input size; batches come out normalised
    (and augmented, and ZCA-whitened if asked) as float32. Images up to 8 pixels smaller are
    zero-padded (LeNet-5: MNIST's 28x28 digits in 32x32, as in the paper); much smaller ones are
    kept at their size and resized up in every batch (bilinear: CIFAR-10 into a 224-pixel
    ImageNet network), so the dataset takes no more memory than its own pixels."""

    def __init__(self, split: Split, size: tuple[int, ...], mean, std, device: torch.device):
        images = adapt_images(split.images, size)
        c, h, w = images.shape[1:]
        self.resize: tuple[int, int] | None = None
        if (h, w) != tuple(size[1:]):
            dh, dw = size[1] - h, size[2] - w
            if dh < 0 or dw < 0:
                raise CnnlabError(f"the model takes {size[1]}x{size[2]} images but the data is {h}x{w}")
            if fits_by_padding(h, w, size):
                images = F.pad(images, (dw // 2, dw // 2, dh // 2, dh // 2))
            else:
                self.resize = (size[1], size[2])
        self.images = images.to(device)
        self.labels = split.labels.to(device)
        self.classes = split.classes
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.zca: tuple[Tensor, Tensor] | None = None
        self.pca: tuple[Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def _sample(self, n: int = 10_000) -> Tensor:
        idx = torch.linspace(0, len(self) - 1, min(n, len(self)), device=self.labels.device).long()
        return self.images[idx].float().div_(255)

    def fit_zca(self, eps: float = 1e-2) -> tuple[Tensor, Tensor]:
        """ZCA whitening W = U (S + eps)^-1/2 U^T of the normalised training images."""
        if self.resize:
            h, w = self.images.shape[2:]
            raise CnnlabError(
                f"ZCA whitening needs the images at the model's input size; these {h}x{w} images "
                f"are resized up to {self.resize[0]}x{self.resize[1]} batch by batch; drop --whiten"
            )
        x = ((self._sample() - self.mean) / self.std).flatten(1).double()
        mu = x.mean(0)
        cov = (x - mu).T @ (x - mu) / len(x)
        s, u = torch.linalg.eigh(cov)
        self.zca = (mu.float(), (u @ torch.diag((s.clamp_min(0) + eps).rsqrt()) @ u.T).float())
        return self.zca

    def fit_pca(self) -> tuple[Tensor, Tensor]:
        """Eigenvalues and eigenvectors of the RGB covariance over the training pixels (AlexNet §4.1)."""
        if self.images.shape[1] != 3:
            raise CnnlabError("PCA colour augmentation needs RGB images")
        pixels = self._sample(2_000).permute(0, 2, 3, 1).reshape(-1, 3).double()
        vals, vecs = torch.linalg.eigh(torch.cov(pixels.T))
        self.pca = (vals.float(), vecs.float())
        return self.pca

    def batch(self, idx: Tensor, augment: tuple[str, ...] = (), generator: torch.Generator | None = None):
        """Images (normalised, augmented) and labels; segmentation masks move with their images
        (crops, translations, flips, rotations; the uncovered border is void, IGNORE)."""
        x = self.images[idx].float().div_(255)
        y = self.labels[idx]
        n, c, h, w = x.shape
        pca = (self.pca or self.fit_pca()) if "pca" in augment else None
        x, y = augment_pixels(x, y, augment, generator, pca)
        if self.resize:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        if self.zca is not None:
            mu, whiten = self.zca
            x = ((x.flatten(1) - mu) @ whiten).view(n, c, h, w)
        if "cutout" in augment:
            x = cutout(x, generator)
        return x, (y.long() if y.ndim == 3 else y)


class FolderData:
    """An image folder streamed through a DataLoader (workers, pinned memory): random resized
    crops and flips for training, resize and centre crop for evaluation, then normalisation.
    Unreadable files stop the run with their path (`on_bad_image="fail"`) or are left out of
    their batch with a logged line each (`"skip"`)."""

    def __init__(
        self,
        root: str | ImageFolder,
        train: bool,
        size: tuple[int, ...],
        mean,
        std,
        batch_size: int,
        device: torch.device,
        workers: int | None = None,
        on_bad_image: str = "fail",
        log=print,
    ):
        from torchvision.transforms import v2

        h = size[1]
        grey = [v2.Grayscale(1)] if size[0] == 1 else []  # the ITU-R 601 luma, as PIL's "L"
        steps = (
            grey + [v2.RandomResizedCrop(size[1:], antialias=True), v2.RandomHorizontalFlip()]
            if train
            else grey + [v2.Resize(round(h * 256 / 224), antialias=True), v2.CenterCrop(size[1:])]
        )
        tf = v2.Compose([v2.ToImage(), *steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
        self.dataset = root if isinstance(root, ImageFolder) else ImageFolder(root, train)  # listed once
        self.dataset.transform, self.dataset.bad_images = tf, "return"
        self.classes, self.labels = self.dataset.classes, self.dataset.labels.to(device)
        self.train, self.batch_size, self.device = train, batch_size, device
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        self.on_bad_image, self.log, self.skipped = on_bad_image, log, set()

    def __len__(self) -> int:
        return len(self.dataset)

    def process_batch_size(self, world: int) -> int:
        """Images per batch in each process of a torchrun job of `world` processes."""
        return max(1, self.batch_size // world)

    def batches(self, order: Tensor | None = None, d: Dist | None = None, seed: int = 0):
        """(x, y) on the device, taking the images in `order` (default: all, in order); the
        workers' random transforms are seeded from `seed`. In a torchrun job each process reads
        every world-th image of the order, batch_size / world per step."""
        world, rank = (d.world, d.rank) if d else (1, 0)
        idx = (torch.arange(len(self)) if order is None else order.cpu())[rank::world]
        loader = torch.utils.data.DataLoader(
            self.dataset,
            self.process_batch_size(world),
            sampler=idx.tolist(),
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            collate_fn=collate_readable,
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
        )
        for x, y, bad in loader:
            for message in bad:
                if self.on_bad_image == "fail":
                    raise DatasetError(f"{message}; remove it, or pass --on-bad-image skip to leave such files out")
                if message not in self.skipped:
                    self.skipped.add(message)
                    self.log(f"skipped {message}")
            if x is not None:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def make_data(
    dataset: str,
    train: bool,
    size,
    mean,
    std,
    device,
    data_dir=None,
    batch_size: int = 128,
    classes=(),
    per_class: int | None = None,
    **folder_options,
):
    """DeviceData for the small datasets, FolderData for `folder:PATH`: only `classes` (if given),
    at most the first `per_class` images of each."""
    if dataset.startswith("folder:"):
        images = ImageFolder(dataset[len("folder:") :], train).select(classes, per_class)
        return FolderData(images, train, size, mean, std, batch_size, device, **folder_options)
    split = subset(load_dataset(dataset, train=train, data_dir=data_dir), classes, per_class)
    return DeviceData(split, size, mean, std, device)


def eval_batch_size(data, values: int = 1 << 23) -> int:
    """Images per evaluation batch of in-memory data: 1,000, or fewer where that would exceed
    `values` input values (32 MiB of float32): 55 images at 3x224x224."""
    if getattr(data, "images", None) is None or data.images.ndim != 4:
        return 1000
    c, h, w = data.images.shape[1:]
    h, w = data.resize or (h, w)
    return max(1, min(1000, values // (c * h * w)))


def eval_batches(data, batch_size: int | None = None, d: Dist = Dist()):
    """Every (x, y) of `data` in order, without augmentation (in a torchrun job: this process's share)."""
    if isinstance(data, FolderData):
        yield from data.batches(None, d)
        return
    batch_size = batch_size or eval_batch_size(data)
    idx = torch.arange(d.rank, len(data), d.world, device=data.labels.device)
    for start in range(0, len(idx), batch_size):
        yield data.batch(idx[start : start + batch_size])
