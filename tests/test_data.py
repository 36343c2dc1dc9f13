import gzip
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import CIFAR10_CLASSES, DatasetError, load_cifar10_zip, load_dataset, read_idx
from conftest import DATA


def test_mnist_from_the_official_files():
    train, test = load_dataset("mnist", train=True, data_dir=DATA), load_dataset("mnist", train=False, data_dir=DATA)
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 1, 28, 28)
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert round(train.images.float().div(255).mean().item(), 4) == 0.1307


def test_cifar10_test_split_from_the_jpeg_zip():
    test = load_cifar10_zip(DATA / "cifar10" / "cifar10-jpeg.zip", train=False)
    assert test.images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.classes == CIFAR10_CLASSES


def _idx(magic, dims, payload):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + payload


def test_idx_errors_name_the_file_and_the_problem(tmp_path):
    good = tmp_path / "good-idx1.gz"
    good.write_bytes(gzip.compress(_idx(2049, [3], bytes([1, 2, 3]))))
    assert read_idx(good, 2049).tolist() == [1, 2, 3]
    wrong_magic = tmp_path / "magic.gz"
    wrong_magic.write_bytes(gzip.compress(_idx(2051, [3], bytes(3))))
    with pytest.raises(DatasetError, match=r"magic.gz: not an IDX file with magic number 2049 \(found 2051\)"):
        read_idx(wrong_magic, 2049)
    truncated = tmp_path / "short.gz"
    truncated.write_bytes(gzip.compress(_idx(2049, [5], bytes(3))))
    with pytest.raises(DatasetError, match="header says 5 values but the file holds 3 bytes"):
        read_idx(truncated, 2049)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(_idx(2049, [3], bytes(3)))[:-6])
    with pytest.raises(DatasetError, match="broken.gz: cannot be read"):
        read_idx(broken, 2049)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        read_idx(good, 2049, expected_md5="0" * 32)


def test_unknown_and_missing_datasets(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'mnits'; closest: mnist"):
        load_dataset("mnits", data_dir=tmp_path)
    with pytest.raises(DatasetError, match=r"cifar10: .*cifar10-jpeg.zip is missing"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_small_cifar_zip(tmp_path):
    path = tmp_path / "c.zip"
    with zipfile.ZipFile(path, "w") as z:
        for cls, value in (("cat", 10), ("airplane", 200)):
            buf = io.BytesIO()
            Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(buf, "PNG")
            z.writestr(f"test/{cls}/0000.jpg", buf.getvalue())
    split = load_cifar10_zip(path, train=False)
    assert split.labels.tolist() == [0, 3]  # class order, not file order
    assert split.images[0].float().mean().item() == 200
    path.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable CIFAR-10 zip"):
        load_cifar10_zip(path, train=False)
