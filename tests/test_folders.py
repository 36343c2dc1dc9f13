"""Image folders (and zips of them) streamed through a DataLoader, on real CIFAR-10 photos."""

import zipfile

import pytest
from conftest import DATA

from cnnlab.cli import main
from cnnlab.data import DatasetError, ImageFolder
from cnnlab.evaluation.runs import evaluate_runs
from cnnlab.train import recipe, train

CLASSES = ("cat", "ship", "truck")


@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory):
    """ROOT/<class>/*.jpg (hash split) and ROOT/train|val/<class>/*.jpg, plus a zip of the latter,
    from the first 40 test photos of three CIFAR-10 classes."""
    root = tmp_path_factory.mktemp("folders")
    with zipfile.ZipFile(DATA / "cifar10" / "cifar10-jpeg.zip") as z:
        for cls in CLASSES:
            for i in range(40):
                data = z.read(f"test/{cls}/{i:04d}.jpg")
                flat = root / "flat" / cls / f"{i:04d}.jpg"
                split = root / "split" / ("train" if i < 30 else "val") / cls / f"{i:04d}.jpg"
                for path in (flat, split):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
    with zipfile.ZipFile(root / "split.zip", "w") as z:
        for path in sorted((root / "split").rglob("*.jpg")):
            z.write(path, path.relative_to(root / "split").as_posix())
    return root


def test_layouts_and_zip(photo_folders):
    train, val = ImageFolder(photo_folders / "split", True), ImageFolder(photo_folders / "split", False)
    assert train.classes == CLASSES and (len(train), len(val)) == (90, 30)
    zipped = ImageFolder(photo_folders / "split.zip", True)
    assert zipped.samples == train.samples
    assert zipped[5][0].tobytes() == train[5][0].tobytes()  # same pixels from the zip
    flat_train, flat_test = ImageFolder(photo_folders / "flat", True), ImageFolder(photo_folders / "flat", False)
    assert len(flat_train) + len(flat_test) == 120 and 4 <= len(flat_test) <= 25  # about 10 % held out
    assert not {n for n, _ in flat_train.samples} & {n for n, _ in flat_test.samples}
    with pytest.raises(DatasetError, match="no images in class sub-folders"):
        ImageFolder(photo_folders / "flat" / "cat", True)


def test_training_and_evaluating_on_a_folder(photo_folders, tmp_path, capsys):
    cfg = recipe(
        "resnet20",
        f"folder:{photo_folders / 'split.zip'}",
        epochs=2,
        batch_size=16,
        lr=0.05,
        schedule="cosine",
        augment=(),
        out=str(tmp_path / "run"),
    )
    result = train(cfg, log=lambda line: None)
    assert len(result["history"]) == 2 and result["model"].fc.out_features == 3
    ev = evaluate_runs([tmp_path / "run"])
    assert ev["images"] == 30 and ev["top1"] == pytest.approx(result["test"]["top1"], abs=1e-6)
    with pytest.raises(SystemExit) as e:
        main(["train", "resnet20", "--dataset", "folder:/no/such/folder"])
    assert e.value.code == 2
    assert "no such folder or zip file" in capsys.readouterr().err


def test_colour_photos_train_a_grey_network(photo_folders, tmp_path):
    import json

    import torch

    from cnnlab.data.loaders import FolderData
    from cnnlab.evaluation.runs import predict_images

    data = FolderData(photo_folders / "split", False, (1, 28, 28), [0.5], [0.25], 8, torch.device("cpu"))
    x, _ = next(data.batches())
    assert x.shape == (8, 1, 28, 28)
    cfg = recipe(
        "lenet5_modern", f"folder:{photo_folders / 'split'}", epochs=1, batch_size=16, out=str(tmp_path / "run")
    )
    result = train(cfg, log=lambda line: None)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["mean"] == pytest.approx([0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406])  # ImageNet's, as luma
    assert saved["std"] == pytest.approx([0.299 * 0.229 + 0.587 * 0.224 + 0.114 * 0.225])
    assert evaluate_runs([tmp_path / "run"])["top1"] == pytest.approx(result["test"]["top1"], abs=1e-6)
    (top,) = predict_images(tmp_path / "run", [photo_folders / "split" / "val" / "cat" / "0030.jpg"], k=3)
    assert sorted(c for c, _ in top) == sorted(CLASSES) and sum(p for _, p in top) == pytest.approx(1, abs=1e-5)


def test_unreadable_images_fail_by_path_or_are_skipped(photo_folders, tmp_path):
    import shutil

    root = tmp_path / "messy"
    shutil.copytree(photo_folders / "split", root)
    good = (root / "train" / "cat" / "0000.jpg").read_bytes()
    (root / "train" / "cat" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "train" / "ship" / "notes.png").write_text("not an image at all")
    (root / "train" / "truck" / "empty.jpeg").write_bytes(b"")
    log = []
    cfg = recipe("resnet20", f"folder:{root}", epochs=1, batch_size=16, lr=0.05, augment=(), max_steps=40)
    with pytest.raises(
        DatasetError,
        match=r"(truncated\.jpg|notes\.png|empty\.jpeg): not a readable image .*"
        r"--on-bad-image skip",
    ):
        train(cfg, log=log.append)
    cfg.on_bad_image = "skip"
    result = train(cfg, log=log.append)
    skipped = sorted(line.split("/")[-1].split(":")[0] for line in log if line.startswith("skipped "))
    assert skipped == ["empty.jpeg", "notes.png", "truncated.jpg"]  # each named once
    assert len(result["history"]) == 1 and 0 <= result["test"]["top1"] <= 1
    assert main(["train", "resnet20", "--dataset", f"folder:{root}", "--max-steps", "2", "--epochs", "1"]) == 2


def test_class_subsets_of_a_folder(photo_folders, tmp_path, monkeypatch):
    """--classes, --train-per-class and --test-per-class pick from a folder as from MNIST (they
    were silently ignored: a run on two classes trained on all three)."""
    part = ImageFolder(photo_folders / "split", True).select(("truck", "cat"), per_class=4)
    assert part.classes == ("truck", "cat") and part.labels.tolist() == [1] * 4 + [0] * 4
    assert [n for n, _ in part.samples] == [f"cat/{i:04d}.jpg" for i in range(4)] + [
        f"truck/{i:04d}.jpg" for i in range(4)
    ]
    with pytest.raises(DatasetError, match="no class 'cow' in .*; its classes: cat, ship, truck"):
        ImageFolder(photo_folders / "split", True).select(("cow",))
    import cnnlab.train

    seen = []
    real = cnnlab.data.loaders.FolderData.__init__

    def spy(self, images, train, *args, **kwargs):
        real(self, images, train, *args, **kwargs)
        seen.append((train, self.classes, len(self)))

    monkeypatch.setattr(cnnlab.data.loaders.FolderData, "__init__", spy)
    cfg = recipe(
        "resnet20",
        f"folder:{photo_folders / 'split'}",
        epochs=1,
        batch_size=4,
        lr=0.05,
        augment=(),
        classes=("ship", "cat"),
        train_per_class=6,
        test_per_class=5,
        out=str(tmp_path / "run"),
    )
    result = train(cfg, log=lambda line: None)
    assert seen == [(True, ("ship", "cat"), 12), (False, ("ship", "cat"), 10)]
    assert result["model"].fc.out_features == 2
    ev = evaluate_runs([tmp_path / "run"])
    assert ev["per_class"].keys() == {"ship", "cat"} and ev["images"] == 20  # all their test images


def test_16_bit_greyscale_images_are_scaled_not_clipped(tmp_path):
    """PIL's own conversion clips 16-bit values at 255 (a dark scan would read as white)."""
    import numpy as np
    import torch
    from PIL import Image

    from cnnlab.evaluation.runs import image_input

    levels = np.arange(28 * 28, dtype=np.float64).reshape(28, 28) / (28 * 28 - 1)  # 0 .. 1
    eight = np.rint(levels * 255).astype(np.uint8)
    for cls in ("dark", "light"):
        (tmp_path / cls).mkdir()
        Image.fromarray(eight).save(tmp_path / cls / "8.png")
        Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / cls / "16.png")  # the same levels
        Image.fromarray(eight.astype(np.int32) * 257).save(tmp_path / cls / "32.tif")  # PIL mode "I"
    assert Image.open(tmp_path / "dark" / "16.png").mode == "I;16"
    pictures = {}
    for training in (True, False):  # a flat folder is split between the two by a hash of the names
        folder = ImageFolder(tmp_path, training)
        pictures.update({name: np.asarray(folder.read(i)) for i, (name, _) in enumerate(folder.samples)})
    assert len(pictures) == 6
    assert np.array_equal(pictures["dark/16.png"], pictures["dark/8.png"])
    assert np.array_equal(pictures["dark/32.tif"], pictures["dark/8.png"])
    assert pictures["dark/16.png"][..., 0].tolist() == eight.tolist()  # grey, as RGB
    cfg = {"input_size": [1, 28, 28], "mean": [0.0], "std": [1.0]}
    assert torch.equal(image_input(tmp_path / "dark" / "16.png", cfg), image_input(tmp_path / "dark" / "8.png", cfg))


def test_a_folder_validates_on_the_last_training_photos_of_each_class(photo_folders, tmp_path, monkeypatch):
    images = ImageFolder(photo_folders / "split", True)  # 30 training photos of each of 3 classes
    val = images.split_off(0.2)
    assert len(images) == 72 and len(val) == 18
    assert [n for n, _ in val.samples] == [f"{c}/{i:04d}.jpg" for c in CLASSES for i in range(24, 30)]
    assert not {n for n, _ in images.samples} & {n for n, _ in val.samples}
    import cnnlab.train

    seen = []
    real = cnnlab.data.loaders.FolderData.__init__

    def spy(self, images, train, *args, **kwargs):
        real(self, images, train, *args, **kwargs)
        seen.append((train, len(self)))

    monkeypatch.setattr(cnnlab.data.loaders.FolderData, "__init__", spy)
    cfg = recipe(
        "resnet20",
        f"folder:{photo_folders / 'split'}",
        epochs=1,
        batch_size=8,
        lr=0.05,
        augment=(),
        train_per_class=10,
        val_split=0.3,
        out=str(tmp_path / "run"),
    )
    row = train(cfg, log=lambda line: None)["history"][0]
    assert seen == [
        (True, 21),
        (False, 30),
        (False, 9),
    ]  # training photos, the test folder, validation (eval transforms)
    assert "val_top1" in row and "test_top1" in row


def _hash_side(name: str) -> str:
    import hashlib

    return "test" if int(hashlib.md5(name.encode()).hexdigest(), 16) % 10 == 0 else "train"


def test_a_handful_of_images_is_named_not_lost(tmp_path, capsys):
    """A few images per class in ROOT/<class>/: the hash split can leave the test side empty, or a
    class without training images; each is said in one line (it was "no images in class sub-folders")."""
    with zipfile.ZipFile(DATA / "cifar10" / "cifar10-jpeg.zip") as z:
        photo = z.read("test/cat/0000.jpg")
    few = tmp_path / "few"
    for cls in CLASSES:  # two training-side images per class, none on the test side
        names = [f"{i:03d}.jpg" for i in range(50) if _hash_side(f"{cls}/{i:03d}.jpg") == "train"][:2]
        for name in names:
            (few / cls).mkdir(parents=True, exist_ok=True)
            (few / cls / name).write_bytes(photo)
    assert len(ImageFolder(few, True)) == 6
    with pytest.raises(DatasetError, match="none of its 6 images falls in the test split .* give the split yourself"):
        ImageFolder(few, False)
    assert main(["train", "lenet5_modern", "--dataset", f"folder:{few}", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none of its 6 images falls in the test split" in err
    # a class whose only image is on the test side: named, instead of shifting the labels of the others
    lonely = next(f"{i:03d}.jpg" for i in range(200) if _hash_side(f"zebra/{i:03d}.jpg") == "test")
    (few / "zebra").mkdir()
    (few / "zebra" / lonely).write_bytes(photo)
    with pytest.raises(DatasetError, match="zebra: every image of this class falls in the test split"):
        ImageFolder(few, False)


def test_classes_mean_the_same_in_both_splits(photo_folders, tmp_path):
    """A val/ folder without one of the training classes: the labels still follow the training classes."""
    import shutil

    root = tmp_path / "split"
    shutil.copytree(photo_folders / "split", root)
    shutil.rmtree(root / "val" / "cat")
    train, val = ImageFolder(root, True), ImageFolder(root, False)
    assert train.classes == val.classes == CLASSES and set(val.labels.tolist()) == {1, 2}  # ship, truck
    (root / "val" / "dog").mkdir()
    (root / "val" / "dog" / "x.jpg").write_bytes((root / "val" / "ship" / "0030.jpg").read_bytes())
    with pytest.raises(DatasetError, match="val/dog: a class without training images"):
        ImageFolder(root, False)
