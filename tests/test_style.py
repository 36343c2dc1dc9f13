"""Neural style transfer: the paper's losses by hand, and a real picture from the demo images."""

import pytest
import torch
from conftest import DATA
from PIL import Image

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.style import (
    FeatureExtractor,
    Preprocess,
    content_loss,
    gram,
    layer_names,
    read_image,
    style_layer_loss,
    stylize,
    tv_loss,
    vgg_features,
)

STYLE = DATA / "style"


def test_gram_matrix_and_losses_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # N = 2 maps, M = 2 positions
    assert gram(f).tolist() == [[5.0, 11.0], [11.0, 25.0]]  # F F^T
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # E = 1/(4 N^2 M^2) sum (G - A)^2 = (16 + 121 + 121 + 576) / 64
    assert style_layer_loss(f, a).item() == pytest.approx(834 / 64)
    assert content_loss(f, torch.zeros_like(f)).item() == 0.5 * (1 + 4 + 9 + 16)
    x = torch.tensor([[0.0, 1.0], [3.0, 5.0]]).view(1, 1, 2, 2)
    assert tv_loss(x).item() == (3**2 + 4**2) + (1**2 + 2**2)


def test_vgg_layer_names_and_preprocessing():
    features, used = vgg_features("vgg19", "random")
    names = layer_names(features)
    assert used == "random" and names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names.index("relu4_2") == 22 and names.index("relu5_1") == 29 and len(names) == 37
    net = FeatureExtractor(features, ["relu1_1", "relu4_2"], pool="avg")
    assert len(net.stack) == 23 and not any(isinstance(m, torch.nn.MaxPool2d) for m in net.stack)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert Preprocess("caffe")(red).flatten().tolist() == pytest.approx([-103.939, -116.779, 255 - 123.68])
    assert Preprocess("torchvision")(red).flatten().tolist() == pytest.approx(
        [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    )
    with pytest.raises(CnnlabError, match="no layer 'relu9_1'"):
        FeatureExtractor(features, ["relu9_1"])


def test_the_losses_fall_on_real_images():
    content = read_image(STYLE / "content" / "tubingen.jpg", 48)
    style = read_image(STYLE / "style" / "starry_night.jpg", 48)
    assert content.shape == (1, 3, 36, 48) and 0 <= content.min() and content.max() <= 1
    features, _ = vgg_features("vgg19", "random")
    image, history = stylize(content, style, features, style_weight=1e6, steps=15)
    assert image.shape == content.shape and 0 <= image.min() and image.max() <= 1
    assert history[-1]["style"] < 0.5 * history[0]["style"]  # the style statistics move to the painting's
    assert history[-1]["loss"] < history[0]["loss"] and history[0]["content"] == 0  # starts from the content
    # the maps up to relu5_1 are halved four times: a picture must keep 16 pixels (it was a traceback)
    small = torch.rand(1, 3, 16, 20)
    assert stylize(small, small, features, steps=1)[0].shape == small.shape
    with pytest.raises(
        CnnlabError,
        match="the style image is 15x20 pixels; the layers up to relu5_1 halve it 4 "
        "times, so its shorter side must be at least 16 pixels",
    ):
        stylize(small, small[:, :, :15], features, steps=1)


def test_stylize_command_writes_the_picture_and_snapshots(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    monkeypatch.setenv("CNNLAB_WEIGHTS", str(tmp_path / "no-weights"))
    out = tmp_path / "tubingen-starry.png"
    argv = [
        "stylize",
        str(STYLE / "content" / "tubingen.jpg"),
        str(STYLE / "style" / "starry_night.jpg"),
        "-o",
        str(out),
        "--size",
        "40",
        "--steps",
        "4",
        "--snapshot-every",
        "2",
        "--optimizer",
        "adam",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ImageNet weights for vgg19 are not available" in printed and "using random weights" in printed
    assert Image.open(out).size == (40, 30) and (tmp_path / "tubingen-starry-0002.png").exists()
    assert main(["stylize", "nowhere.jpg", str(STYLE / "style" / "udnie.jpg"), "-o", str(tmp_path / "b.png")]) == 2
    assert "nowhere.jpg: no such file" in capsys.readouterr().err
