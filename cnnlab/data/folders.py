"""Photos in one sub-folder per class, in a folder or a zip file (the layout of ImageNet and of
torchvision's ImageFolder), read one by one through PIL; unreadable files are named, or skipped."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetError
from .datasets import held_out, pick

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def open_image(source, mode: str, name: str | os.PathLike | None = None):
    """A PIL image in `mode` ("RGB" or "L") from a path or file object (`name` says which in
    messages). PIL converts 16-bit and 32-bit integer greyscale (16-bit PNGs, TIFFs) by clipping
    at 255, so a dark 16-bit image would read as white; those are scaled instead, 65535 to 255.
    A file that is not an image, or one too large to decode safely, is a DatasetError."""
    from PIL import Image

    name = name if name is not None else source
    try:
        with warnings.catch_warnings():  # PIL's decompression-bomb warning, as the error it stands for
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            if img.mode.startswith("I;16") or img.mode == "I":
                scaled = np.clip(np.rint(np.asarray(img, dtype=np.float64) / 257), 0, 255).astype(np.uint8)
                img = Image.fromarray(scaled, "L")
            return img.convert(mode)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        size = str(e).split(" pixels")[0].split()[-1] if " pixels" in str(e) else "so many"
        raise DatasetError(
            f"{name}: {size} pixels, too large to read safely (PIL's limit is "
            f"{Image.MAX_IMAGE_PIXELS:,}); make it smaller first"
        ) from None
    except Exception as e:  # noqa: BLE001  (any file content: PIL raises OSError, ValueError, SyntaxError, ...)
        raise DatasetError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None


def read_image_file(path: str | os.PathLike, mode: str):
    """An image file as a PIL image in `mode`; a missing path, a folder, a pipe or a device (which
    would be waited on for ever) is refused in one line naming it, before anything is read."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file (a folder, a pipe or a device); give an image file")
    return open_image(path, mode, path)


class ImageFolder(torch.utils.data.Dataset):
    """Images in one sub-folder per class, in a folder or a zip file, streamed through PIL.

    Layouts: `ROOT/train/<class>/...` with `ROOT/val/<class>/...` (or `test/`), like ImageNet;
    or just `ROOT/<class>/...`, split deterministically into 90 % training and 10 % test by a
    hash of each file's name. Class indices follow the sorted class names.
    """

    def __init__(self, root: str | os.PathLike, train: bool, transform=None):
        self.root, self.transform, self._zip = Path(root), transform, None
        self.bad_images = "raise"
        self.prefix, names, classes = self._split(self._list(), train)
        self.classes = tuple(classes)
        if not self.classes:
            raise DatasetError(
                f"{self.root}: no images in class sub-folders (ROOT/<class>/<image> or ROOT/train/<class>/<image>)"
            )
        unknown = sorted({n.split("/")[0] for n in names} - set(self.classes))
        if unknown and self.prefix:
            raise DatasetError(
                f"{self.root}/{self.prefix}{unknown[0]}: a class without training images; add some to "
                f"{self.root}/train/{unknown[0]}, or remove the folder"
            )
        if unknown:
            raise DatasetError(
                f"{self.root}/{unknown[0]}: every image of this class falls in the test split (a hash of "
                "each file name puts about 10 % there); add images, or give the split yourself: "
                "ROOT/train/<class>/<image> and ROOT/val/<class>/<image>"
            )
        self.samples = sorted((n, self.classes.index(n.split("/")[0])) for n in names)
        self.labels = torch.tensor([label for _, label in self.samples])

    def _split(self, names: list[str], train: bool) -> tuple[str, list[str], list[str]]:
        """(prefix, this split's images as CLASS/FILE, the class names): with train/ and val/ (or
        test/) folders those; else about 10 % of the images, by a hash of their names, test. The
        classes are the training images' in both splits, so a label means the same class in each."""
        split_dirs = {n.split("/")[0] for n in names if n.count("/") >= 2}
        test_dir = next((d for d in ("val", "test") if d in split_dirs), None)
        if "train" in split_dirs and test_dir:
            prefix = "train/" if train else f"{test_dir}/"
            training = [n[6:] for n in names if n.startswith("train/") and n.count("/") == 2]
            mine = [n[len(prefix) :] for n in names if n.startswith(prefix) and n.count("/") == 2]
            return prefix, mine, sorted({n.split("/")[0] for n in training})
        listed = [n for n in names if n.count("/") == 1]
        in_test = [int(hashlib.md5(n.encode()).hexdigest(), 16) % 10 == 0 for n in listed]
        mine = [n for n, test in zip(listed, in_test) if test != train]
        if listed and not mine:  # a handful of images: the hash split left this side empty
            raise DatasetError(
                f"{self.root}: none of its {len(listed)} images falls in the {'training' if train else 'test'} split "
                "(a hash of each file name puts about 10 % in the test split); with so few images, give the split "
                "yourself: ROOT/train/<class>/<image> and ROOT/val/<class>/<image>"
            )
        return "", mine, sorted({n.split("/")[0] for n, test in zip(listed, in_test) if not test})

    def _list(self) -> list[str]:
        if self.root.is_dir():
            return self._walk()
        if zipfile.is_zipfile(self.root):
            with zipfile.ZipFile(self.root) as z:
                return sorted(n for n in z.namelist() if n.lower().endswith(IMAGE_EXTENSIONS))
        raise DatasetError(f"{self.root}: neither a folder nor a zip file")

    def _walk(self) -> list[str]:
        """The image files below the root folder, as ROOT-relative names. A folder that cannot be
        read is named (it was silently left out, and with it a class); so is a special file among
        the images (reading a pipe would wait for ever)."""

        def refuse(error: OSError):
            raise DatasetError(
                f"{error.filename}: cannot be read ({error.strerror}); its images would be left out: "
                "fix its permissions or move it out of the folder"
            )

        names = []
        for folder, _, files in os.walk(self.root, onerror=refuse):
            for file in files:
                path = Path(folder, file)
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                if not path.is_file():
                    raise DatasetError(
                        f"{path}: not a regular file (a pipe or a device) among the images; move it out of the folder"
                    )
                names.append(path.relative_to(self.root).as_posix())
        return sorted(names)

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, i: int):
        name = self.prefix + self.samples[i][0]
        if self.root.is_dir():
            data = (self.root / name).read_bytes()
        else:
            if self._zip is None:  # one handle per worker process
                self._zip = zipfile.ZipFile(self.root)
            data = self._zip.read(name)
        return open_image(io.BytesIO(data), "RGB", f"{self.root}/{name}")

    def __getitem__(self, i: int):
        """(image, label); with `bad_images = "return"`, (None, message) for an unreadable file
        instead of an error, so a DataLoader's main process can decide (`collate_readable`)."""
        try:
            img = self.read(i)
        except DatasetError as e:
            if self.bad_images == "return":
                return None, str(e)
            raise
        return (self.transform(img) if self.transform else img), self.samples[i][1]

    def __getstate__(self):  # zip handles do not cross process boundaries
        return {**self.__dict__, "_zip": None}

    def split_off(self, fraction: float) -> ImageFolder:
        """Move a validation split of `fraction` (`held_out`) out of these images; return it."""
        mask = held_out(self.labels, fraction)
        val, held = copy.copy(self), mask.tolist()
        val.samples, val.labels = [s for s, m in zip(self.samples, held) if m], self.labels[mask]
        self.samples, self.labels = [s for s, m in zip(self.samples, held) if not m], self.labels[~mask]
        return val

    def select(self, classes=(), per_class: int | None = None) -> ImageFolder:
        """Keep the images of `classes` (names, in that order, relabelled 0..k-1; all if empty), at
        most the first `per_class` of each class in file-name order, as `subset` does for a Split."""
        names = tuple(classes) or self.classes
        idx, labels = pick(self.classes, self.labels, names, per_class, str(self.root))
        self.classes, self.labels = names, labels
        self.samples = [(self.samples[i][0], label) for i, label in zip(idx.tolist(), labels.tolist())]
        return self


def collate_readable(batch: list) -> tuple[Tensor | None, Tensor, list[str]]:
    """DataLoader collate for ImageFolder(bad_images="return"): the readable images stacked, their
    labels, and the messages naming the unreadable files."""
    good = [(x, y) for x, y in batch if x is not None]
    bad = [msg for x, msg in batch if x is None]
    x = torch.stack([x for x, _ in good]) if good else None
    return x, torch.tensor([y for _, y in good], dtype=torch.long), bad
