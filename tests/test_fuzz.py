"""Every file parser, fed random and mutated bytes: it reads the file or raises a CnnlabError
naming it; nothing else escapes (no crash, no other exception type, no traceback for users)."""

import gzip
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save

from cnnlab.checkpoint import load
from cnnlab.data import ImageFolder, load_cifar10_zip, load_csv, read_idx
from cnnlab.errors import CnnlabError
from cnnlab.train.settings import read_settings_file
from cnnlab.weights import read_state_dict

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def mutations(valid: bytes):
    """Truncations, overwritten bytes and inserted junk of a valid file, and random bytes."""
    n = len(valid)
    truncated = st.integers(0, n - 1).map(lambda k: valid[:k])
    flipped = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda edits: bytes(_apply(bytearray(valid), edits))
    )
    inserted = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(
        lambda t: valid[: t[0]] + t[1] + valid[t[0] :]
    )
    return st.one_of(truncated, flipped, inserted, st.binary(max_size=512))


def _apply(data: bytearray, edits) -> bytearray:
    for pos, value in edits:
        data[pos] = value
    return data


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _safetensors_file() -> bytes:
    return save(
        {"model.fc.weight": torch.arange(12.0).view(3, 4), "model.fc.bias": torch.zeros(3)},
        metadata={"cnnlab": json.dumps({"epoch": 1, "config": {"model": "mlp"}})},
    )


@FUZZ
@given(data=mutations(_safetensors_file()))
def test_safetensors_checkpoints(tmp_path, data):
    path = _write(tmp_path, "checkpoint.safetensors", data)
    try:
        tensors, meta = load(path)
    except CnnlabError as e:
        assert str(path) in str(e)
    else:
        assert isinstance(tensors, dict) and isinstance(meta, (dict, list, str, int, float, bool, type(None)))


def _pth_file() -> bytes:
    buf = io.BytesIO()
    torch.save({"fc.weight": torch.ones(2, 2), "fc.bias": torch.zeros(2)}, buf)
    return buf.getvalue()


@FUZZ
@given(data=mutations(_pth_file()))
# a zip directory that claims several disks (zipfile.is_zipfile raised BadZipFile), found by this test
@example(data=bytes(_apply(bytearray(_pth_file()), [(1803, 2)])))
def test_pytorch_weight_files(tmp_path, data):
    path = _write(tmp_path, "weights.pth", data)
    try:
        state = read_state_dict(path)
    except CnnlabError as e:
        assert str(path) in str(e)
    else:
        assert all(isinstance(v, torch.Tensor) for v in state.values())


def _idx_file() -> bytes:
    images = np.arange(3 * 4 * 4, dtype=np.uint8)
    return gzip.compress(
        (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (3, 4, 4)) + images.tobytes(), mtime=0
    )


@FUZZ
@given(data=mutations(_idx_file()))
def test_idx_files(tmp_path, data):
    path = _write(tmp_path, "train-images-idx3-ubyte.gz", data)
    try:
        images = read_idx(path, 2051)
    except CnnlabError as e:
        assert str(path) in str(e)
    else:
        assert images.ndim == 3


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buf, "PNG")
    return buf.getvalue()


@FUZZ
@given(data=mutations(_png()))
def test_images_in_folders(tmp_path, data):
    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True, exist_ok=True)
    _write(tmp_path / "train" / "cat", "x.png", data)
    _write(tmp_path / "val" / "cat", "y.png", _png())
    folder = ImageFolder(tmp_path, train=True)
    try:
        img, label = folder[0]
    except CnnlabError as e:
        assert "cat/x.png: not a readable image" in str(e)
    else:
        assert img.mode == "RGB" and label == 0
    folder.bad_images = "return"  # what the training loader does: report, decide in the main process
    img, second = folder[0]
    assert (img is None) == isinstance(second, str)


def _cifar_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        jpeg = io.BytesIO()
        Image.new("RGB", (32, 32), (200, 10, 10)).save(jpeg, "JPEG")
        z.writestr("train/cat/00000.jpg", jpeg.getvalue())
        z.writestr("train_order.txt", "train/cat/00000.jpg\n")
    return buf.getvalue()


@FUZZ
@given(data=mutations(_cifar_zip()))
def test_cifar_zips(tmp_path, data):
    path = _write(tmp_path, "cifar10-jpeg.zip", data)
    try:
        split = load_cifar10_zip(path, train=True)
    except CnnlabError as e:
        assert str(path) in str(e)
    else:
        assert split.images.shape[1:] == (3, 32, 32)


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.sampled_from(
            ['{"lr": 0.1}', '{"lr": "fast"}', "[1, 2]", '{"epochs": 2, "nope": 1}', '{"augment": ["flip"]}']
        ),
    ),
    suffix=st.sampled_from([".json", ".toml"]),
)
def test_config_files(tmp_path, text, suffix):
    path = tmp_path / f"run{suffix}"
    path.write_text(text)
    try:
        settings_ = read_settings_file(str(path))
    except CnnlabError as e:
        assert str(path) in str(e)
    else:
        assert isinstance(settings_, dict)


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.just("a,b,t\n1,2,3\n4,5,6\n"),
        st.just("a,b,t\n1,2,3\n4,x,6\n"),
        st.just("a,t\n1\n2,3\n"),
    )
)
def test_csv_tables(tmp_path, text):
    path = tmp_path / "table.csv"
    path.write_text(text)
    try:
        x, y, names = load_csv(path, "t")
    except CnnlabError as e:
        assert str(path) in str(e)
    else:
        assert x.shape[0] == y.shape[0] >= 2 and len(names) == x.shape[1]


def test_the_valid_files_used_for_mutation_are_valid(tmp_path):
    """The fuzzing starts from files each parser reads."""
    assert load(_write(tmp_path, "c.safetensors", _safetensors_file()))[1]["epoch"] == 1
    assert read_state_dict(_write(tmp_path, "w.pth", _pth_file()))["fc.weight"].shape == (2, 2)
    assert read_idx(_write(tmp_path, "i.gz", _idx_file()), 2051).shape == (3, 4, 4)
    assert load_cifar10_zip(_write(tmp_path, "z.zip", _cifar_zip()), train=True).images.shape == (1, 3, 32, 32)
    with pytest.raises(CnnlabError):
        read_settings_file(str(_write(tmp_path, "bad.json", b'{"lr": "fast"}')))
