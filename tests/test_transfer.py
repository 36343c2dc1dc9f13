"""Transfer learning on real data: freezing strategies, class subsets, CNN features + SVM, advice."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA

import cnnlab
from cnnlab.cli import main
from cnnlab.data import load_dataset, subset
from cnnlab.errors import CnnlabError, DatasetError
from cnnlab.models.adapt import freeze, head_name
from cnnlab.train import recipe, train
from cnnlab.transfer import advise, features, linear_classifier


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """A modern LeNet-5 trained for one epoch on MNIST: the source network."""
    run = tmp_path_factory.mktemp("source") / "mnist"
    train(recipe("lenet5_modern", "mnist", data_dir=str(DATA), out=str(run), epochs=1), log=lambda line: None)
    return run


def test_subsets_keep_the_order_and_relabel():
    split = load_dataset("mnist", train=False, data_dir=DATA)
    part = subset(split, ("7", "2"), per_class=3)
    assert part.classes == ("7", "2") and len(part) == 6
    assert part.labels[:2].tolist() == [0, 1] and sorted(part.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    first7 = (split.labels == 7).nonzero().flatten()[:3]
    assert torch.equal(part.images[part.labels == 0], split.images[first7])  # the first three 7s, in order
    with pytest.raises(DatasetError, match="no class 'eleven'"):
        subset(split, ("eleven",))


def test_strategies_freeze_what_they_say():
    model = cnnlab.create_model("resnet18", num_classes=5)
    assert head_name(model) == "fc"
    frozen = freeze(model, "feature-extractor")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"} and model.bn1 in frozen
    model = cnnlab.create_model("resnet18", num_classes=5)
    freeze(model, "fine-tune-all", freeze_until="layer2")
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "fc"}
    model = cnnlab.create_model("vgg11")
    freeze(model, "fine-tune-top")  # the last third of the 11 weighted layers: conv 8 and the 3 FC layers
    trainable = sorted({n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad})
    assert trainable == ["classifier.0", "classifier.3", "classifier.6", "features.18"]
    with pytest.raises(
        CnnlabError,
        match="freeze until 'layer9': resnet18 has no such layer; its top-level layers: "
        "conv1, bn1, relu, maxpool, layer1",
    ):
        freeze(cnnlab.create_model("resnet18"), "fine-tune-top", freeze_until="layer9")


def test_feature_extractor_trains_only_a_new_head_with_frozen_statistics(mnist_run, tmp_path):
    source = cnnlab.load_model(mnist_run)
    cfg = recipe(
        "lenet5_modern",
        "cifar10",
        data_dir=str(DATA),
        out=str(tmp_path / "t"),
        weights=str(mnist_run),
        strategy="feature-extractor",
        classes=("cat", "dog"),
        train_per_class=100,
        epochs=2,
        optimizer="adam",
        lr=1e-2,
        weight_decay=0.0,
        schedule="none",
    )
    result = train(cfg, log=lambda line: None)
    model = result["model"].cpu()
    for name in ("conv1", "conv2", "fc1", "fc2"):  # fixed
        assert torch.equal(getattr(model, name).weight, getattr(source, name).weight)
    assert model.fc3.out_features == 2  # a new head for the two target classes
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["mean"] == [0.1307] and config["std"] == [0.3081]  # the input the MNIST weights expect
    assert config["classes"] == ["cat", "dog"] and config["input_size"] == [1, 28, 28]
    from cnnlab.evaluation.runs import evaluate_runs

    ev = evaluate_runs([tmp_path / "t"], data_dir=str(DATA))
    assert ev["images"] == 2000 and ev["top1"] == pytest.approx(result["test"]["top1"], abs=1e-6)
    # a network with batch norm: frozen statistics stay as they were
    src = tmp_path / "r20"
    train(
        recipe(
            "resnet20",
            "cifar10",
            data_dir=str(DATA),
            out=str(src),
            max_steps=2,
            epochs=1,
            classes=("cat", "dog"),
            train_per_class=64,
            batch_size=32,
        ),
        log=lambda line: None,
    )
    before = cnnlab.load_model(src).bn1.running_mean.clone()
    tuned = train(
        recipe(
            "resnet20",
            "cifar10",
            data_dir=str(DATA),
            weights=str(src),
            strategy="feature-extractor",
            classes=("ship", "truck"),
            train_per_class=64,
            batch_size=32,
            max_steps=3,
            epochs=1,
        ),
        log=lambda line: None,
    )["model"]
    assert torch.equal(tuned.bn1.running_mean.cpu(), before)


def test_features_and_a_linear_svm_beat_random_features(mnist_run, tmp_path):
    trained = features(
        "lenet5_modern", str(mnist_run), "mnist", tmp_path / "f.npz", train_per_class=50, data_dir=str(DATA)
    )
    assert trained["train_x"].shape == (500, 84) and trained["test_x"].shape == (10_000, 84)
    torch.manual_seed(0)
    random = features("lenet5_modern", None, "mnist", train_per_class=50, data_dir=str(DATA))
    good, poor = linear_classifier(trained, "svm"), linear_classifier(random, "logreg")
    assert good["test_accuracy"] > 0.95 and good["test_accuracy"] > poor["test_accuracy"] + 0.1
    import numpy as np

    assert set(np.load(tmp_path / "f.npz")) == {"train_x", "train_y", "test_x", "test_y", "classes"}
    few = features(
        "lenet5_modern",
        str(mnist_run),
        "mnist",
        classes=("3", "8"),
        train_per_class=5,
        test_per_class=7,
        data_dir=str(DATA),
    )  # test_per_class was ignored (10,000 test images)
    assert few["train_x"].shape == (10, 84) and few["test_x"].shape == (14, 84)
    threes = few["train_x"][few["train_y"] == 0]  # relabelled: "3" is class 0 of ("3", "8")
    assert np.allclose(threes, trained["train_x"][trained["train_y"] == 3][:5], atol=1e-5)  # the same first 3s
    wide = features(
        "mlp", None, "mnist", train_per_class=1, test_per_class=1, data_dir=str(DATA), model_kwargs={"hidden": [32, 16]}
    )  # --model-kwargs was ignored
    assert wide["train_x"].shape == (10, 16)


def test_features_of_an_image_folder(tmp_path):
    """CNN features + SVM on a folder of photos (class sub-folders), the lectures' transfer recipe."""
    import zipfile

    with zipfile.ZipFile(DATA / "cifar10" / "cifar10-jpeg.zip") as z:
        for split, count in (("train", 30), ("test", 10)):
            for cls in ("automobile", "frog"):
                folder = tmp_path / "photos" / ("val" if split == "test" else "train") / cls
                folder.mkdir(parents=True)
                for i in range(count):
                    (folder / f"{i:04d}.jpg").write_bytes(z.read(f"{split}/{cls}/{i:04d}.jpg"))
    torch.manual_seed(0)
    feats = features("resnet20", None, f"folder:{tmp_path / 'photos'}", train_per_class=20)
    assert feats["train_x"].shape == (40, 64) and feats["test_x"].shape == (20, 64)
    assert list(feats["classes"]) == ["automobile", "frog"] and feats["train_y"].tolist() == [0] * 20 + [1] * 20
    again = features("resnet20", None, f"folder:{tmp_path / 'photos'}", train_per_class=20)
    assert not np.array_equal(feats["train_x"], again["train_x"])  # another random network
    torch.manual_seed(0)
    same = features("resnet20", None, f"folder:{tmp_path / 'photos'}", train_per_class=20)
    assert np.array_equal(feats["train_x"], same["train_x"])  # no random crops: the same features
    fitted = linear_classifier(feats, "logreg")
    assert (fitted["train_images"], fitted["feature_dim"]) == (40, 64)


def test_advice_follows_the_decision_matrix(capsys):
    assert advise(50, "high")["strategy"] == "feature-extractor"
    assert advise(50, "low")["strategy"] == "fine-tune-top"
    assert advise(5000, "high")["strategy"] == "fine-tune-top"
    assert advise(5000, "low")["strategy"] == "fine-tune-all"
    assert main(["advise", "--samples", "200", "--similarity", "high"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("small data (200 labelled images per class), high similarity: feature-extractor")
    assert "run: cnnlab features MODEL --weights imagenet" in out


def test_finetune_command_and_its_errors(mnist_run, tmp_path, capsys):
    argv = [
        "finetune",
        "lenet5_modern",
        "--weights",
        str(mnist_run),
        "--dataset",
        "mnist",
        "--data-dir",
        str(DATA),
        "--strategy",
        "fine-tune-top",
        "--head-lr-mult",
        "10",
        "--classes",
        "0,1",
        "--train-per-class",
        "50",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "ft"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "top-5" not in out  # of two classes, top-5 is 100 % by definition: not printed
    assert main(["eval", str(tmp_path / "ft"), "--data-dir", str(DATA), "--test-per-class", "5"]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "top-5" not in out
    assert main(["finetune", "lenet5_modern", "--dataset", "mnist", "--strategy", "feature-extractor"]) == 2
    assert "starts from trained weights: give --weights" in capsys.readouterr().err
    assert main(["finetune", "lenet5_modern", "--weights", str(mnist_run), "--init", "he"]) == 2
    assert "--init re-initialises the weights" in capsys.readouterr().err
