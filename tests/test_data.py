import gzip
import io
import zipfile

import numpy as np
import pytest
import torch
from conftest import DATA
from PIL import Image

from cnnlab.data import CIFAR10_CLASSES, DatasetError, load_cifar10_zip, load_dataset, read_idx


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
    with pytest.raises(
        DatasetError,
        match=r"cifar10: .*cifar-10-binary.tar.gz is missing and cannot download "
        r"https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz: downloads are off",
    ):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(DatasetError, match=r"mnist: .*train-images-idx3-ubyte.gz is missing .*put the official files"):
        load_dataset("mnist", data_dir=tmp_path)
    assert not any(tmp_path.rglob("*.part"))  # nothing half-written left behind


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


def _fake_cifar_archive(path, name, n_train_per_member=3):
    """A small archive in the official binary layout, with known pixels and labels."""
    import tarfile

    from cnnlab.data import CIFAR_BINARY

    _, _, folder, train_members, test_member, label_bytes, label_index = CIFAR_BINARY[name]
    n_classes = 10 if name == "cifar10" else 100
    names = "\n".join(f"class{i}" for i in range(n_classes)) + "\n"
    with tarfile.open(path, "w:gz") as tar:

        def add(member, data):
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for m, member in enumerate(train_members + [test_member]):
            records = b""
            for i in range(n_train_per_member):
                label = (m * 7 + i) % n_classes
                head = bytes([label]) if label_bytes == 1 else bytes([label // 5, label])
                pixels = np.zeros((3, 32, 32), np.uint8)
                pixels[0, 0, 0], pixels[2, 31, 31] = label, 255  # red top-left, blue bottom-right
                records += head + pixels.tobytes()
            add(member, records)
        add("batches.meta.txt" if name == "cifar10" else "fine_label_names.txt", names.encode())


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_official_binary_layout(tmp_path, name):
    from cnnlab.data import load_cifar_binary

    archive = tmp_path / "a.tar.gz"
    _fake_cifar_archive(archive, name)
    train = load_cifar_binary(name, archive, train=True)
    members = 5 if name == "cifar10" else 1
    assert train.images.shape == (3 * members, 3, 32, 32)
    assert train.labels[:3].tolist() == [0, 1, 2] and len(train.classes) == (10 if name == "cifar10" else 100)
    assert train.images[1, 0, 0, 0] == 1 and train.images[1, 2, 31, 31] == 255 and train.images[1, 1].sum() == 0
    test = load_cifar_binary(name, archive, train=False)
    assert test.labels.tolist() == [(members * 7 + i) % len(train.classes) for i in range(3)]
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DatasetError, match="not a readable"):
        load_cifar_binary(name, archive, train=True)
