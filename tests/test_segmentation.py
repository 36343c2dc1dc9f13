"""Segmentation: MNIST scenes, the VOC loader, pixel metrics, masks that move with their
images, FCN / dilated training through the trainer, and transposed convolution explained."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DATA
from PIL import Image

import cnnlab
from cnnlab.analysis import analyze, receptive_field
from cnnlab.cli import main
from cnnlab.data import Split
from cnnlab.data.loaders import DeviceData
from cnnlab.data.segmentation import IGNORE, VOC_CLASSES, load_voc, mnist_scenes
from cnnlab.errors import CnnlabError, DatasetError
from cnnlab.evaluation.metrics import confusion, scores
from cnnlab.evaluation.plots import palette
from cnnlab.models.fcn import bilinear_kernel
from cnnlab.train import recipe, train


def test_conv_transpose_is_the_gradient_of_conv():
    # "if you know how to compute gradients in convolution layers, you know upconv": the
    # transposed convolution of g with W is the gradient of <conv2d(x, W), g> with respect to x
    torch.manual_seed(0)
    w = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    for stride, padding, dilation in ((1, 0, 1), (2, 1, 1), (3, 2, 2)):
        x = torch.randn(2, 3, 17, 17, dtype=torch.float64, requires_grad=True)
        y = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
        g = torch.randn_like(y)
        (grad,) = torch.autograd.grad(y, x, g)
        out_pad = 17 - ((y.shape[2] - 1) * stride - 2 * padding + dilation * 3 + 1)
        up = F.conv_transpose2d(g, w, stride=stride, padding=padding, dilation=dilation, output_padding=out_pad)
        assert up.shape == x.shape and torch.allclose(up, grad, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bilinear_init_equals_interpolate(factor):
    # kernel 2f, stride f, padding f/2: exactly F.interpolate(bilinear, align_corners=False)
    # away from the border (interpolate repeats the edge, the transposed convolution sees zeros)
    x = torch.rand(1, 3, 9, 7)
    up = F.conv_transpose2d(x, bilinear_kernel(3, 2 * factor), stride=factor, padding=factor // 2)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape == (1, 3, 9 * factor, 7 * factor)
    inner = (slice(None), slice(None), slice(factor, -factor), slice(factor, -factor))
    assert torch.allclose(up[inner], ref[inner], atol=1e-6)


def test_dilated_stack_receptive_fields_and_transposed_sizes(capsys):
    assert [rf for rf, _ in receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)])] == [3, 7, 15]
    stack = torch.nn.Sequential(*(torch.nn.Conv2d(4, 4, 3, padding=d, dilation=d) for d in (1, 2, 4)))
    rows = analyze(stack, (4, 32, 32)).layers
    assert [r.receptive_field for r in rows] == [(3, 3), (7, 7), (15, 15)]
    assert all(r.output_shape == (1, 4, 32, 32) for r in rows)  # no resolution lost
    # output = (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    assert main(["conv-size", "8", "16", "--stride", "8", "--padding", "4", "--transposed"]) == 0
    assert "64" in capsys.readouterr().out
    up = torch.nn.ConvTranspose2d(1, 1, 16, stride=8, padding=4)
    assert up(torch.zeros(1, 1, 8, 8)).shape[-1] == 64


def test_mnist_scenes_are_deterministic_and_labelled_by_ink():
    a = mnist_scenes(True, count=40, data_dir=DATA)
    b = mnist_scenes(True, count=40, data_dir=DATA, seed=0)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.shape == (40, 1, 64, 64) and a.labels.shape == (40, 64, 64) and a.classes[0] == "background"
    assert a.labels.max() <= 10 and (a.images[:, 0][a.labels > 0] > 127).all()  # digit pixels are inked
    digits = [len(torch.unique(m)) - 1 for m in a.labels]  # 2-4 digits (fewer classes if repeated/covered)
    assert 1 <= min(digits) and max(digits) <= 4 and sum(digits) / len(digits) > 2
    background_ink = a.images[:, 0][a.labels == 0]
    assert (background_ink > 127).float().mean() > 0.005  # clutter: ink that is not a digit
    test = mnist_scenes(False, count=5, size=96, data_dir=DATA)
    assert test.images.shape == (5, 1, 96, 96) and not torch.equal(test.images[:, :, :64, :64], a.images[:5])
    with pytest.raises(DatasetError, match="64 to 128 pixels"):
        mnist_scenes(True, count=1, size=32, data_dir=DATA)


def voc_fixture(root, n=3, bad=None):
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"2007_00{i:04d}" for i in range(n)]
    for name in ids:
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{name}.jpg")
        mask = np.zeros((40, 50), dtype=np.uint8)
        mask[10:30, 10:30] = 15  # person
        mask[10, 10:30] = IGNORE  # a void boundary
        if bad == name:
            mask[0, 0] = 42
        m = Image.fromarray(mask, mode="P")
        m.putpalette(palette(21).flatten().tolist())
        m.save(voc / "SegmentationClass" / f"{name}.png")
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids[:2]) + "\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text(ids[2] + "\n")
    return root


def test_voc_loader_reads_the_devkit_layout(tmp_path):
    root = voc_fixture(tmp_path)
    train_split = load_voc(root, True, size=32)
    assert train_split.images.shape == (2, 3, 32, 32) and train_split.labels.shape == (2, 32, 32)
    assert train_split.classes == VOC_CLASSES and train_split.classes[15] == "person"
    assert set(torch.unique(train_split.labels).tolist()) == {0, 15, IGNORE}
    assert len(load_voc(root / "VOCdevkit" / "VOC2012", False, size=32)) == 1
    with pytest.raises(DatasetError, match="train.txt is missing"):
        load_voc(tmp_path / "nowhere", True)
    voc_fixture(tmp_path / "bad", bad="2007_000001")
    with pytest.raises(DatasetError, match="class index 42 is not a VOC class"):
        load_voc(tmp_path / "bad", True)


def test_pixel_metrics_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, IGNORE, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    conf = confusion(pred, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]  # the void pixel counts for nothing
    s = scores(conf)
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)
    # IoU: class 0: 1 / (2 + 2 - 1); class 1: 3 / (3 + 4 - 3); class 2: 1 / (2 + 1 - 1)
    assert s["iou"] == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert s["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert s["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert scores(confusion(torch.tensor([0]), torch.tensor([0]), 3))["miou"] == 1.0  # absent classes left out


def test_masks_move_with_their_images():
    images = torch.zeros(16, 1, 16, 16, dtype=torch.uint8)
    for i in range(16):
        images[i, 0, i % 8 : i % 8 + 5, 3 + i // 4 : 9 + i // 4] = 255
    masks = (images[:, 0] > 0).to(torch.uint8) * 3
    data = DeviceData(Split(images, masks, ("bg", "a", "b", "c")), (1, 16, 16), [0.0], [1.0], torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x, y = data.batch(torch.arange(16), ("crop", "flip", "translate"), gen)
    assert y.dtype == torch.long and y.shape == (16, 16, 16)
    valid = y != IGNORE
    assert torch.equal((x[:, 0] > 0.5)[valid], (y == 3)[valid])
    assert (~valid).any() and not torch.equal(x, data.batch(torch.arange(16))[0])  # it moved


def test_fcn_trains_on_mnist_scenes_and_eval_renders(tmp_path, capsys):
    run = tmp_path / "fcn"
    cfg = recipe("fcn8s", "mnist-scenes", out=str(run), data_dir=str(DATA), epochs=1, max_steps=3, batch_size=8)
    result = train(cfg, log=lambda line: None)
    assert set(result["test"]) >= {"top1", "miou", "loss"} and 0 <= result["test"]["miou"] <= 1
    config = json.loads((run / "config.json").read_text())
    assert config["num_classes"] == 11 and config["input_size"] == [1, 64, 64]
    assert config["model_kwargs"]["pad100"] is False
    assert main(["eval", str(run), "--data-dir", str(DATA), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 2000 and set(report["iou"]) == set(cnnlab.data.segmentation.SCENE_CLASSES)
    assert (run / "segmentation.png").read_bytes()[:4] == b"\x89PNG"
    from cnnlab.report import write_report  # its report: the masks, and IoU per class from the same evaluation

    html = write_report([run], tmp_path / "seg.html", data_dir=str(DATA), log=lambda line: None).read_text()
    assert "<h2>Predicted masks</h2>" in html and f"Mean IoU {100 * report['miou']:.2f} %" in html
    assert html.count('<td class="num">') >= 11 and "<td>background</td>" in html
    assert f"test mean IoU {100 * result['test']['miou']:.2f} %" in html  # the run's own number in its title
    assert main(["predict", str(run), str(run / "segmentation.png")]) == 2
    assert "is a segmentation run; `cnnlab eval" in capsys.readouterr().err
    with pytest.raises(CnnlabError, match="every class in every image"):
        train(recipe("fcn8s", "mnist-scenes", data_dir=str(DATA), train_per_class=5), log=lambda line: None)
    with pytest.raises(CnnlabError, match="not with scale"):
        train(recipe("fcn8s", "mnist-scenes", data_dir=str(DATA), augment=("scale",)), log=lambda line: None)


def test_voc_trains_through_the_same_loop(tmp_path):
    root = voc_fixture(tmp_path / "voc")
    cfg = recipe("fcn32s", f"voc:{root}", epochs=1, batch_size=2, model_kwargs={"width": 1 / 16, "pad100": False})
    result = train(cfg, log=lambda line: None)
    assert 0 <= result["test"]["miou"] <= 1 and result["history"][0]["train_loss"] > 0


def test_dilated_front_end_by_hand():
    with torch.device("meta"):
        net = cnnlab.create_model("dilated_frontend")
    vgg_convs = 14_714_688  # VGG-16's 13 convolutions, torchvision's count
    heads = (512 * 4096 * 49 + 4096) + (4096 * 4096 + 4096) + (4096 * 21 + 21) + 21 * 21 * 16 * 16
    assert sum(p.numel() for p in net.parameters()) == vgg_convs + heads + 28_392  # + the context module
    assert net.fc6.dilation == (4, 4) and all(c.dilation == (2, 2) for c in net.features[-6::2])
    small = cnnlab.create_model("dilated_frontend", width=1 / 16, in_channels=1, num_classes=11)
    assert small(torch.randn(1, 1, 64, 64)).shape == (1, 11, 64, 64)
    with pytest.raises(ValueError, match="divisible by 8"):
        small(torch.randn(1, 1, 60, 60))


def test_mnist_scenes_normalisation_is_the_training_scenes_own():
    from cnnlab.data.normalization import NORMALIZATION

    x = mnist_scenes(True, data_dir=DATA).images.float() / 255
    (mean,), (std,) = NORMALIZATION["mnist-scenes"]
    assert x.mean().item() == pytest.approx(mean, abs=1e-4) and x.std().item() == pytest.approx(std, abs=1e-4)


def test_batch_norm_backbone_has_torchvisions_vgg16_bn_layout():
    import torchvision

    with torch.device("meta"):
        fcn = cnnlab.create_model("fcn8s", batch_norm=True, pad100=False)
        reference = torchvision.models.vgg16_bn().features
    ours = {k: tuple(v.shape) for k, v in fcn.features.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    dilated = cnnlab.create_model("dilated_frontend", width=1 / 16, in_channels=1, num_classes=11, batch_norm=True)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in dilated.features) == 13
    assert dilated(torch.randn(2, 1, 64, 64)).shape == (2, 11, 64, 64)


def test_context_module_goes_on_a_trained_front_end(tmp_path):
    """Yu & Koltun's two stages: the front end alone, then the context module on top of it."""
    from cnnlab.errors import WeightsError

    front = tmp_path / "front"
    base = dict(data_dir=str(DATA), epochs=1, max_steps=2, batch_size=8)
    train(
        recipe("dilated_frontend", "mnist-scenes", out=str(front), model_kwargs={"context": False}, **base),
        log=lambda line: None,
    )
    trained = cnnlab.load_model(front)
    grown = cnnlab.create_model("dilated_frontend", weights=str(front), context=True)
    assert isinstance(grown.context, cnnlab.models.fcn.ContextModule)
    for key, value in trained.state_dict().items():
        assert torch.equal(grown.state_dict()[key], value), key
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():  # the identity-initialised module passes the positive scores through
        scores = trained.score(
            trained.dropout(trained.relu(trained.fc7(trained.relu(trained.fc6(trained.features(x))))))
        )
        assert torch.allclose(grown.eval()(x), trained.upscore(scores.clamp(min=0)), atol=1e-5)
    result = train(
        recipe(
            "dilated_frontend",
            "mnist-scenes",
            out=str(tmp_path / "context"),
            weights=str(front),
            model_kwargs={"context": True},
            **base,
        ),
        log=lambda line: None,
    )
    assert result["model"].has_context and 0 <= result["test"]["miou"] <= 1
    with pytest.raises(WeightsError, match="shape mismatches"):
        cnnlab.create_model("dilated_frontend", weights=str(front), width=1 / 16)
