import json

import numpy as np
import pytest
import torch
from conftest import DATA
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.data.loaders import DeviceData
from cnnlab.errors import CnnlabError
from cnnlab.evaluation.metrics import classification
from cnnlab.evaluation.runs import evaluate_runs, predict_images
from cnnlab.train import recipe, train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = []
    for seed in (0, 1):
        cfg = recipe("mlp", "mnist", epochs=1, seed=seed, data_dir=str(DATA), out=str(root / f"mlp{seed}"))
        out.append((root / f"mlp{seed}", train(cfg, log=lambda line: None)))
    return out


def test_metrics_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
    labels = torch.tensor([0, 2, 1, 1])
    m = classification(probs, labels, ("a", "b", "c"))
    assert m["top1"] == 0.75 and m["top5"] == 1.0
    assert m["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert m["per_class"] == {"a": 1.0, "b": 0.5, "c": 1.0}
    assert m["loss"] == pytest.approx(-np.log([0.7, 0.6, 0.4, 0.7]).mean(), rel=1e-6)


def test_eval_reproduces_the_training_result_and_writes_the_confusion_matrix(runs, tmp_path):
    run, result = runs[0]
    ev = evaluate_runs([run], data_dir=str(DATA))
    assert ev["top1"] == pytest.approx(result["test"]["top1"], abs=1e-6)
    assert sum(map(sum, ev["confusion"])) == 10_000 and len(ev["per_class"]) == 10
    assert main(["eval", str(run), "--data-dir", str(DATA), "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "confusion.csv").read_text().splitlines()
    assert lines[0].startswith("true \\ predicted,0,1") and len(lines) == 11
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_on_the_first_images_of_each_class(runs, capsys):
    run, _ = runs[0]
    full = evaluate_runs([run], data_dir=str(DATA))
    part = evaluate_runs([run], data_dir=str(DATA), per_class=20)
    assert part["images"] == 200 and all(sum(row) == 20 for row in part["confusion"])
    # the same predictions on the same images: the part's confusion is counted from the full run's
    split = load_dataset("mnist", train=False, data_dir=DATA)
    first = torch.cat([(split.labels == c).nonzero().flatten()[:20] for c in range(10)])
    assert part["_gallery"][1].argmax(1).tolist() == full["_gallery"][1][first.sort().values].argmax(1).tolist()
    assert (
        main(
            [
                "eval",
                str(run),
                "--data-dir",
                str(DATA),
                "--test-per-class",
                "5",
                "--format",
                "json",
                "--out",
                str(run.parent),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["images"] == 50


def test_ensemble_and_flip_tta(runs, capsys):
    (a, ra), (b, rb) = runs
    ens = evaluate_runs([a, b], data_dir=str(DATA))
    assert ens["top1"] >= min(ra["test"]["top1"], rb["test"]["top1"])
    flip = evaluate_runs([a], tta="flip", data_dir=str(DATA))
    assert flip["top1"] != ens["top1"] and flip["tta"] == "flip"
    assert main(["eval", str(a), str(b), "--data-dir", str(DATA), "--format", "json", "--out", str(a.parent)]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["runs"] == [str(a), str(b)] and out.err == ""
    # digits trained without flips: mirror images cost accuracy, and the command says why it may
    assert flip["top1"] < evaluate_runs([a], data_dir=str(DATA))["top1"]
    assert (
        main(
            ["eval", str(a), "--tta", "flip", "--data-dir", str(DATA), "--test-per-class", "2", "--out", str(a.parent)]
        )
        == 0
    )
    assert capsys.readouterr().err.startswith(f"cnnlab: note: {a} trained without flipped images; --tta flip")
    with pytest.raises(CnnlabError, match="not a run directory"):
        evaluate_runs([a.parent], data_dir=str(DATA))
    broken = a.parent / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")  # it was a JSONDecodeError traceback
    with pytest.raises(CnnlabError, match=r"broken/config.json: not readable \(JSONDecodeError"):
        evaluate_runs([broken], data_dir=str(DATA))
    # ten classes, but not these ten: digits scored as airplanes, cars, ... (it ran and printed 10 %)
    with pytest.raises(
        CnnlabError,
        match=r"trained on the classes 0, 1, 2, 3, \.\.\. \(10\) of mnist, but cifar10 "
        r"has airplane, automobile, bird, cat, \.\.\. \(10\)",
    ):
        evaluate_runs([a], "cifar10", data_dir=str(DATA))


def test_predict_image_files(runs, tmp_path, capsys):
    run, _ = runs[0]
    test = load_dataset("mnist", train=False, data_dir=DATA)
    paths = []
    for i in range(3):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(path)
        paths.append(path)
    tops = predict_images(run, paths)
    assert [top[0][0] for top in tops] == ["7", "2", "1"]  # the first test digits
    assert all(len(top) == 5 and abs(sum(p for _, p in top) - 1) < 0.2 for top in tops)
    assert main(["predict", str(run), str(paths[0])]) == 0
    assert capsys.readouterr().out.startswith(f"{paths[0]}: 7 ")
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path)]) == 0  # a folder: its images, by name
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [str(p) for p in paths]
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(run), str(tmp_path / "empty")]) == 2
    assert "empty: a folder without image files" in capsys.readouterr().err
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(CnnlabError, match="bad.png: not a readable image"):
        predict_images(run, [tmp_path / "bad.png"])


def test_a_whitened_run_is_evaluated_with_its_whitening(tmp_path):
    cfg = recipe("mlp", "mnist", epochs=1, whiten=True, lr=0.01, data_dir=str(DATA), out=str(tmp_path / "w"))
    result = train(cfg, log=lambda line: None)
    assert (tmp_path / "w" / "whitening.safetensors").exists()
    ev = evaluate_runs([tmp_path / "w"], data_dir=str(DATA))
    assert ev["top1"] == pytest.approx(result["test"]["top1"], abs=1e-6) and ev["top1"] > 0.8


def test_a_centred_run_trains_on_the_0_255_scale_and_is_evaluated_so(tmp_path):
    # AlexNet's input: raw pixel values less the training set's per-channel mean, no division
    cfg = recipe(
        "cnn4",
        "cifar10",
        epochs=1,
        normalize="center",
        init="normal",
        lr=0.003,
        optimizer="sgd",
        schedule="none",
        train_per_class=200,
        test_per_class=200,
        data_dir=str(DATA),
        out=str(tmp_path / "c"),
    )
    result = train(cfg, log=lambda line: None)
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["std"] == [1 / 255] * 3 and config["mean"] == [0.4914, 0.4822, 0.4465]
    x, _ = DeviceData(
        load_dataset("cifar10", train=False, data_dir=DATA),
        (3, 32, 32),
        config["mean"],
        config["std"],
        torch.device("cpu"),
    ).batch(torch.arange(10_000))
    assert x.min() == pytest.approx(-0.4914 * 255, abs=1e-3) and x.max() == pytest.approx(255 - 0.4465 * 255, abs=1e-3)
    assert x.mean((0, 2, 3)).abs().max() < 2  # centred: the test split's mean is close to the training set's
    ev = evaluate_runs([tmp_path / "c"], data_dir=str(DATA), per_class=200)
    assert ev["top1"] == pytest.approx(result["test"]["top1"], abs=1e-6) and ev["top1"] > 0.15


def test_visualize_filters_and_feature_maps(runs, tmp_path, capsys):
    cfg = recipe("lenet5", "mnist", epochs=1, max_steps=10, data_dir=str(DATA), out=str(tmp_path / "lenet"))
    train(cfg, log=lambda line: None)
    test = load_dataset("mnist", train=False, data_dir=DATA)
    Image.fromarray(test.images[0, 0].numpy()).save(tmp_path / "seven.png")
    assert (
        main(
            [
                "visualize",
                str(tmp_path / "lenet"),
                "--filters",
                "--feature-maps",
                str(tmp_path / "seven.png"),
                "--layer",
                "c3",
            ]
        )
        == 0
    )
    for name in ("filters.png", "feature_maps.png"):
        assert (tmp_path / "lenet" / name).read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert (
        main(["visualize", str(tmp_path / "lenet"), "--feature-maps", str(tmp_path / "seven.png"), "--layer", "conv9"])
        == 2
    )
    assert "no layer 'conv9' in lenet5" in capsys.readouterr().err
    assert (
        main(["visualize", str(tmp_path / "lenet"), "--feature-maps", str(tmp_path / "seven.png"), "--layer", "nope"])
        == 2
    )
    assert "no layer 'nope' in lenet5; its convolutions: c1, c3, c5" in capsys.readouterr().err  # what to give
    assert main(["visualize", str(runs[0][0]), "--filters"]) == 2  # an MLP has no convolution
    assert "no convolution" in capsys.readouterr().err


def test_ten_crop_views_and_the_misclassified_gallery(runs, tmp_path):
    from cnnlab.data.loaders import DeviceData
    from cnnlab.evaluation.tta import views

    data = DeviceData(
        load_dataset("mnist", train=False, data_dir=DATA), (1, 28, 28), (0.1307,), (0.3081,), torch.device("cpu")
    )
    x, _ = data.batch(torch.arange(4))
    crops = views(x, "10crop", data)
    assert len(crops) == 10 and all(c.shape == x.shape for c in crops)
    assert torch.equal(crops[4], x) and torch.equal(crops[9], x.flip(3))  # the centre crop is the image
    black = -0.1307 / 0.3081
    assert torch.allclose(crops[0][:, :, :4, :], torch.full_like(crops[0][:, :, :4, :], black))
    run, _ = runs[0]
    ev = evaluate_runs([run], tta="10crop", data_dir=str(DATA))
    # an MLP has no translation invariance: shifted crops hurt it (why CNNs share weights)
    assert ev["tta"] == "10crop" and ev["images"] == 10_000
    assert 0.1 < ev["top1"] < evaluate_runs([run], data_dir=str(DATA))["top1"]
    assert main(["eval", str(run), "--data-dir", str(DATA), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "misclassified.png").read_bytes()[:4] == b"\x89PNG"


def test_googlenet_multicrop_views(runs):
    from cnnlab.evaluation.tta import MULTICROP_SCALES, views

    # GoogLeNet's scales: 256, 288, 320 and 352 pixels for 224-pixel crops
    assert [round(224 * s) for s in MULTICROP_SCALES] == [256, 288, 320, 352]
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).view(2, 1, 28, 28) / 1000
    crops = views(x, "multicrop", None)
    assert len(crops) == 48 and all(c.shape == x.shape for c in crops)
    for i in range(4):  # per scale: 6 crops, then their 6 mirror images
        block = crops[12 * i : 12 * i + 12]
        assert all(torch.equal(m, c.flip(3)) for c, m in zip(block[:6], block[6:]))
    # at 32 pixels (28 x 8/7) the corner crops start 4 pixels apart and the centre crop 2 pixels in
    big = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True)
    assert torch.equal(crops[3], big[:, :, 4:, 4:]) and torch.equal(crops[4], big[:, :, 2:30, 2:30])
    assert torch.allclose(crops[5], x, atol=0.05)  # the whole image, enlarged and shrunk back
    with pytest.raises(CnnlabError, match="square"):
        views(torch.zeros(1, 1, 28, 30), "multicrop", None)
    run, _ = runs[0]
    ev = evaluate_runs([run], tta="multicrop", data_dir=str(DATA))
    assert ev["tta"] == "multicrop" and ev["images"] == 10_000 and 0.1 < ev["top1"] < 1
