"""Datasets as tensors: MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, read from their official files (or
the CIFAR-10 JPEG zip), verified, and kept as one uint8 tensor per split so that training can
hold them on the device and augment whole batches there.

Where data lives: `data_dir` argument > $CNNLAB_DATA > ~/.cache/cnnlab/data. Each dataset is
looked for in `<root>/<name>/`; MNIST as `<root>/mnist/train-images-idx3-ubyte.gz` and so on.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetError
from ..files import atomic_file, publish, write_problem


@dataclass(frozen=True)
class Split:
    """One split of a dataset: images as uint8 (N, C, H, W) and labels as int64 (N,), or for
    segmentation uint8 (N, H, W) class masks (255: void)."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


# Official files: (file name, md5 of the uncompressed content). Downloads are checked against
# the md5 of the published .gz files (second table), local copies against their content.
IDX_FILES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": None,
        "train-labels-idx1-ubyte.gz": None,
        "t10k-images-idx3-ubyte.gz": None,
        "t10k-labels-idx1-ubyte.gz": None,
    },
}
DOWNLOADS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100")

# The official binary versions (no pickle): (url, md5 of the archive, folder inside it,
# training members, test member, label bytes per record, index of the label we use).
CIFAR_BINARY = {
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "c32a1d4ab5d03f1284b67883e8d87530",
        "cifar-10-batches-bin",
        [f"data_batch_{i}.bin" for i in range(1, 6)],
        "test_batch.bin",
        1,
        0,
    ),
    "cifar100": (
        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        "03b5dce01913d631647c71ecec9e9cb8",
        "cifar-100-binary",
        ["train.bin"],
        "test.bin",
        2,
        1,
    ),
}


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """`data_dir` > $CNNLAB_DATA > ~/.cache/cnnlab/data."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("CNNLAB_DATA"):
        return Path(os.environ["CNNLAB_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "cnnlab" / "data"


def read_idx(path: Path, magic: int, expected_md5: str | None = None) -> np.ndarray:
    """Read a (gzipped) IDX file, checking its magic number, header and size."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot be read ({e}); delete it to download it again") from None
    if expected_md5 and hashlib.md5(raw).hexdigest() != expected_md5:
        raise DatasetError(
            f"{path}: content checksum mismatch (expected md5 {expected_md5}); the file is "
            "corrupt or not the official one"
        )
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise DatasetError(f"{path}: not an IDX file with magic number {magic} (found {found})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(raw) != offset + int(np.prod(dims)):
        raise DatasetError(
            f"{path}: header says {'x'.join(map(str, dims))} values but the file holds "
            f"{len(raw) - offset} bytes of data (truncated?)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def download(url: str, dest: Path, md5: str) -> None:
    """Download to a temporary file, verify the md5, then move into place (never half-written).
    Setting CNNLAB_OFFLINE=1 turns downloads off."""
    if os.environ.get("CNNLAB_OFFLINE", "") not in ("", "0"):
        raise DatasetError(f"cannot download {url}: downloads are off (CNNLAB_OFFLINE is set)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        except OSError as e:
            os.unlink(tmp.name)
            if problem := write_problem(e):
                raise DatasetError(
                    f"cannot save {url} in {dest.parent}: {problem}; free some space or choose "
                    "another data folder (--data-dir or CNNLAB_DATA)"
                ) from None
            raise DatasetError(f"cannot download {url}: {e}") from None
        except BaseException:  # Ctrl-C: nothing half-written stays behind
            os.unlink(tmp.name)
            raise
    digest = hashlib.md5(Path(tmp.name).read_bytes()).hexdigest()
    if digest != md5:
        os.unlink(tmp.name)
        raise DatasetError(f"{url}: checksum mismatch (md5 {digest}, expected {md5}); nothing was saved")
    publish(tmp.name, dest)


def load_idx_dataset(name: str, train: bool, root: Path, download_missing: bool = True) -> Split:
    folder = root / name
    prefix = "train" if train else "t10k"
    images_file, labels_file = folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"
    for f in (images_file, labels_file):
        if not f.exists():
            if not download_missing:
                raise DatasetError(f"{name}: {f} is missing; put the official files in {folder} or allow downloading")
            base, md5s = DOWNLOADS[name]
            try:
                download(base + f.name, f, md5s[f.name])
            except DatasetError as e:
                raise DatasetError(f"{name}: {f} is missing and {e}; put the official files in {folder}") from None
    md5s = IDX_FILES[name]
    images = read_idx(images_file, 2051, md5s[images_file.name])
    labels = read_idx(labels_file, 2049, md5s[labels_file.name])
    if len(images) != len(labels):
        raise DatasetError(f"{name}: {len(images)} images but {len(labels)} labels")
    classes = MNIST_CLASSES if name == "mnist" else FASHION_CLASSES
    return Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)), classes)


def load_cifar10_zip(path: Path, train: bool) -> Split:
    """CIFAR-10 from a zip of JPEGs laid out as train/<class>/NNNN.jpg and test/<class>/NNNN.jpg,
    with `train_order.txt` giving the original training order (see the data README)."""
    from PIL import Image

    split = "train" if train else "test"
    try:
        with zipfile.ZipFile(path) as z:
            if train and "train_order.txt" in z.namelist():
                names = z.read("train_order.txt").decode().split()
            else:
                names = sorted(
                    (n for n in z.namelist() if n.startswith(split + "/") and n.endswith(".jpg")),
                    key=lambda n: (CIFAR10_CLASSES.index(n.split("/")[1]), n),
                )
            images = np.empty((len(names), 32, 32, 3), dtype=np.uint8)
            labels = np.empty(len(names), dtype=np.int64)
            for i, n in enumerate(names):
                images[i] = np.asarray(Image.open(io.BytesIO(z.read(n))).convert("RGB"))
                labels[i] = CIFAR10_CLASSES.index(n.split("/")[1])
    except Exception as e:  # noqa: BLE001  (a damaged zip or JPEG raises many exception types)
        raise DatasetError(f"{path}: not a readable CIFAR-10 zip ({type(e).__name__}: {e})") from None
    if not len(names):
        raise DatasetError(f"{path}: no {split}/<class>/*.jpg images in it")
    return Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels), CIFAR10_CLASSES)


def cache_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "cnnlab" / "decoded"


def load_cifar_binary(name: str, archive: Path, train: bool) -> Split:
    """CIFAR-10/100 from the official binary tar.gz: records of label byte(s) then 3072 pixel
    bytes (1024 red, 1024 green, 1024 blue, row by row). Only the expected members are read."""
    _, _, folder, train_members, test_member, label_bytes, label_index = CIFAR_BINARY[name]
    record = label_bytes + 3072
    names_file = "batches.meta.txt" if name == "cifar10" else "fine_label_names.txt"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            chunks = []
            for member in train_members if train else [test_member]:
                f = tar.extractfile(f"{folder}/{member}")
                chunks.append(f.read())
            classes = tuple(
                line.strip()
                for line in tar.extractfile(f"{folder}/{names_file}").read().decode().splitlines()
                if line.strip()
            )
    except (OSError, EOFError, KeyError, tarfile.TarError, AttributeError) as e:
        raise DatasetError(
            f"{archive}: not a readable {name} binary archive ({e}); delete it to download it again"
        ) from None
    raw = b"".join(chunks)
    if len(raw) % record:
        raise DatasetError(f"{archive}: {len(raw)} bytes is not a whole number of {record}-byte records")
    data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    images = data[:, label_bytes:].reshape(-1, 3, 32, 32)
    labels = data[:, label_index].astype(np.int64)
    if labels.max() >= len(classes):
        raise DatasetError(f"{archive}: label {labels.max()} but only {len(classes)} class names")
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels), classes)


def subset(split: Split, classes=(), per_class: int | None = None) -> Split:
    """The images of `classes` (names, in that order, relabelled 0..k-1; all if empty), at most
    the first `per_class` of each class in the dataset's order."""
    names = tuple(classes) or split.classes
    if names == split.classes and per_class is None:
        return split
    idx, labels = pick(split.classes, split.labels, names, per_class, "this dataset")
    return Split(split.images[idx], labels, names)


def held_out(labels: Tensor, fraction: float) -> Tensor:
    """Which examples a validation split of `fraction` takes (a bool mask): the last
    round(fraction x n) of each class in the dataset's order (stratified, and the same every
    time), keeping at least one of each class for training; for segmentation masks or a table's
    rows, the last round(fraction x N) examples."""
    mask = torch.zeros(len(labels), dtype=torch.bool)
    groups = (
        [(labels == c).nonzero().flatten() for c in labels.unique()]
        if labels.ndim == 1 and not labels.is_floating_point()
        else [torch.arange(len(labels))]
    )
    for idx in groups:
        k = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if len(idx) > 1 else 0
        mask[idx[len(idx) - k :]] = True
    return mask


def split_off(split: Split, fraction: float) -> tuple[Split, Split]:
    """(training part, validation part) of a training split, by `held_out`."""
    mask = held_out(split.labels, fraction)
    return (
        Split(split.images[~mask], split.labels[~mask], split.classes),
        Split(split.images[mask], split.labels[mask], split.classes),
    )


def pick(
    classes: tuple[str, ...], labels: Tensor, names: tuple[str, ...], per_class: int | None, where: str
) -> tuple[Tensor, Tensor]:
    """The indices (in the dataset's order) of the first `per_class` examples of each class in
    `names` (all if None), and their labels renumbered in the order of `names`."""
    twice = [c for c in names if names.count(c) > 1]
    if twice:
        raise DatasetError(f"class {twice[0]!r} is named twice; name each class once")
    unknown = [c for c in names if c not in classes]
    if unknown:
        raise DatasetError(f"no class {unknown[0]!r} in {where}; its classes: {', '.join(classes)}")
    old = torch.tensor([classes.index(c) for c in names], dtype=torch.long)
    idx = torch.cat([(labels == label).nonzero().flatten()[:per_class] for label in old.tolist()]).sort().values
    remap = torch.full((len(classes),), -1, dtype=torch.long)
    remap[old] = torch.arange(len(names))
    return idx, remap[labels[idx]]


# Splits already loaded by this process (an experiment trains many runs on the same data), keyed
# by the source file, its size and time; the tensors are never modified in place.
_LOADED: dict[tuple, Split] = {}


def _in_memory(source: Path, key: str, load) -> Split:
    st = source.stat()
    memo = (str(source), key, st.st_size, st.st_mtime_ns)
    if memo not in _LOADED:
        if len(_LOADED) >= 6:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[memo] = load()
    return _LOADED[memo]


def cached_split(source: Path, key: str, build) -> Split:
    """Decoded splits are cached as plain tensors, keyed by the source file's size and time, and
    loaded with weights_only=True (no pickled code runs); kept in memory once loaded."""
    return _in_memory(source, key, lambda: _from_disk_cache(source, key, build))


def _from_disk_cache(source: Path, key: str, build) -> Split:
    st = source.stat()
    cache = cache_dir() / f"{key}-{st.st_size}-{int(st.st_mtime)}.pt"
    if cache.exists():
        try:
            d = torch.load(cache, weights_only=True)
            return Split(d["images"], d["labels"], tuple(d["classes"]))
        except Exception:  # a stale or damaged cache is rebuilt, never trusted
            pass
    split = build()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()  # torch.save into a file that fills the disk can abort the process: write it here
        torch.save({"images": split.images, "labels": split.labels, "classes": list(split.classes)}, buffer)
        with atomic_file(cache) as tmp:
            Path(tmp).write_bytes(buffer.getbuffer())
    except OSError as e:
        why = getattr(e, "problem", None) or getattr(e, "strerror", None) or str(e).splitlines()[0]
        print(
            f"cnnlab: note: the decoded {key} was not cached in {cache.parent} ({why}); "
            "it will be decoded again next time",
            file=sys.stderr,
        )
    return split


def load_dataset(name: str, train: bool = True, data_dir: str | os.PathLike | None = None) -> Split:
    """Load one split of a dataset by name: mnist, fashion-mnist or cifar10."""
    root = data_root(data_dir)
    if name in IDX_FILES:
        prefix = root / name / ("train" if train else "t10k")
        images, labels = Path(f"{prefix}-images-idx3-ubyte.gz"), Path(f"{prefix}-labels-idx1-ubyte.gz")
        if images.exists() and labels.exists():
            st = labels.stat()  # the labels file is part of the key too
            return _in_memory(
                images, f"{name}-idx-{st.st_size}-{st.st_mtime_ns}", lambda: load_idx_dataset(name, train, root)
            )
        return load_idx_dataset(name, train, root)
    split = "train" if train else "test"
    if name in CIFAR_BINARY:
        url, md5, *_ = CIFAR_BINARY[name]
        archive = root / name / url.rsplit("/", 1)[1]
        zpath = root / "cifar10" / "cifar10-jpeg.zip"
        if name == "cifar10" and not archive.exists() and zpath.exists():  # the JPEG copy (see the data README)
            return cached_split(zpath, f"cifar10-jpeg-{split}", lambda: load_cifar10_zip(zpath, train))
        if not archive.exists():
            try:
                download(url, archive, md5)
            except DatasetError as e:
                raise DatasetError(
                    f"{name}: {archive} is missing and {e}; put the official binary archive there"
                ) from None
        return cached_split(archive, f"{name}-{split}", lambda: load_cifar_binary(name, archive, train))
    close = difflib.get_close_matches(name, DATASETS, n=3)
    raise DatasetError(
        f"unknown dataset {name!r}"
        + (f"; closest: {', '.join(close)}" if close else f"; choose from {', '.join(DATASETS)}")
    )
