"""Pretrained weights: torchvision's published files (made here in the same format), local files,
cnnlab runs; checksums, the cache and offline use."""

import hashlib

import pytest
import torch
import torchvision
from conftest import DATA

import cnnlab
import cnnlab.weights as W
from cnnlab.errors import WeightsError
from cnnlab.train import recipe, train


def test_published_metadata_comes_from_torchvision():
    info = W.pretrained("resnet50")
    assert info.url == "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert (info.top1, info.top5, info.resize, info.crop) == (76.13, 92.862, 256, 224)
    assert info.hash_prefix == "0676ba61" and info.build == {"variant": "v1.5"}
    assert len(info.categories) == 1000 and info.categories[0] == "tench"
    assert W.pretrained("alexnet_owt").top1 == 56.522 and W.pretrained("googlenet_bn").build["transform_input"]
    with pytest.raises(WeightsError, match="no published ImageNet weights for lenet5"):
        cnnlab.create_model("lenet5", weights="imagenet")


def published(tmp_path, tv_name, monkeypatch, name):
    """A file in torchvision's format, named like a published one (torch.hub: name-<sha256 prefix>.pth),
    served from a file:// URL in place of the official one."""
    torch.manual_seed(0)
    kwargs = {"transform_input": True, "init_weights": True} if tv_name == "googlenet" else {}
    reference = torchvision.models.get_model(tv_name, weights=None, **kwargs).eval()
    with torch.no_grad():  # batch-norm statistics that are not the identity
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    server = tmp_path / "server"
    server.mkdir(exist_ok=True)
    tmp = server / "tmp.pth"
    torch.save(reference.state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    file = tmp.rename(server / f"{tv_name}-{digest[:8]}.pth")
    real = W.pretrained(name)
    info = W.Pretrained(
        name, file.as_uri(), real.top1, real.top5, real.resize, real.crop, real.mean, real.std, build=real.build
    )
    monkeypatch.setattr(W, "pretrained", lambda n: info if n == name else real)
    return reference, file, info


def test_imagenet_weights_download_once_then_load_offline(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNLAB_WEIGHTS", str(cache))
    monkeypatch.setenv("CNNLAB_OFFLINE", "0")
    reference, file, info = published(tmp_path, "resnet18", monkeypatch, "resnet18")
    model = cnnlab.create_model("resnet18", weights="imagenet").eval()
    x = torch.randn(2, 3, 224, 224)
    assert torch.allclose(model(x), reference(x), atol=1e-5)  # torchvision's network (v1.5), its weights
    assert model.pretrained.top1 == info.top1 and (cache / file.name).read_bytes() == file.read_bytes()
    file.unlink()  # the server is gone; the cache is enough, and no download is tried
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    again = cnnlab.create_model("resnet18", weights="imagenet").eval()
    assert torch.equal(again(x), model(x))
    for alias in (dict(pretrained=True), dict(weights="IMAGENET1K_V1")):  # timm's and torchvision's words
        assert torch.equal(cnnlab.create_model("resnet18", **alias).eval()(x), model(x)), alias
    head = cnnlab.create_model("resnet18", weights="imagenet", num_classes=10)  # transfer: a new classifier
    assert head.fc.out_features == 10 and torch.equal(head.conv1.weight, model.conv1.weight)
    cached = cache / file.name
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")  # damaged
    with pytest.raises(WeightsError, match=f"{cached}: sha256 .* does not start with {info.hash_prefix}"):
        cnnlab.create_model("resnet18", weights="imagenet")
    cached.unlink()
    with pytest.raises(WeightsError, match=r"not in .*cache and downloads are off .*--weights PATH"):
        cnnlab.create_model("resnet18", weights="imagenet")


def test_weights_names_that_cnnlab_does_not_serve_are_refused():
    from cnnlab.errors import ModelArgumentError

    with pytest.raises(ModelArgumentError, match="weights='DEFAULT' is a torchvision name .* weights='imagenet'"):
        cnnlab.create_model("resnet50", weights="DEFAULT")  # torchvision's DEFAULT is IMAGENET1K_V2 here
    with pytest.raises(ModelArgumentError, match="weights='IMAGENET1K_V2' is a torchvision name"):
        cnnlab.create_model("resnet50", weights="IMAGENET1K_V2")
    with pytest.raises(ModelArgumentError, match="pretrained=True means weights='imagenet'; give one"):
        cnnlab.create_model("resnet50", weights="my.pth", pretrained=True)


def test_a_download_with_the_wrong_checksum_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_WEIGHTS", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNLAB_OFFLINE", "0")
    _, file, info = published(tmp_path, "resnet18", monkeypatch, "resnet18")
    wrong = file.rename(file.with_name("resnet18-00000000.pth"))
    bad = W.Pretrained("resnet18", wrong.as_uri(), 0, 0, 256, 224, info.mean, info.std, build=info.build)
    monkeypatch.setattr(W, "pretrained", lambda n: bad)
    with pytest.raises(WeightsError, match="invalid hash value.*nothing was saved"):
        cnnlab.create_model("resnet18", weights="imagenet")
    assert not list((tmp_path / "cache").iterdir())


def test_googlenet_published_weights_take_standardised_input(tmp_path, monkeypatch):
    reference, file, info = published(tmp_path, "googlenet", monkeypatch, "googlenet_bn")
    model = cnnlab.create_model("googlenet_bn", weights=file.parent).eval()  # a folder holding the file
    assert model.transform_input
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(model(x), reference(x), atol=1e-5)


def test_local_files_and_runs(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.vgg11(weights=None).eval()
    torch.save({"state_dict": tv.state_dict()}, tmp_path / "mine.pth")  # a wrapped checkpoint
    model = cnnlab.create_model("vgg11", weights=tmp_path / "mine.pth").eval()
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(model(x), tv(x), atol=1e-5)
    from safetensors.torch import save_file

    save_file(cnnlab.create_model("lenet5_modern", num_classes=7).state_dict(), tmp_path / "l.safetensors")
    assert cnnlab.create_model("lenet5_modern", weights=tmp_path / "l.safetensors").fc3.out_features == 7
    with pytest.raises(WeightsError, match=r"mine.pth: state dict does not fit vgg13: missing keys"):
        cnnlab.create_model("vgg13", weights=tmp_path / "mine.pth")
    run = tmp_path / "run"
    train(recipe("mlp", "mnist", data_dir=str(DATA), out=str(run), max_steps=2), log=lambda line: None)
    same = cnnlab.create_model("mlp", weights=run)
    assert torch.equal(same.fc.weight, cnnlab.load_model(run).fc.weight)
    assert cnnlab.create_model("mlp", weights=run / "best.safetensors", num_classes=3).fc.out_features == 3
    with pytest.raises(WeightsError, match="holds a mlp, not a lenet5"):
        cnnlab.create_model("lenet5", weights=run)
    with pytest.raises(WeightsError, match="no such file or directory"):
        cnnlab.create_model("mlp", weights=tmp_path / "nowhere.pth")
