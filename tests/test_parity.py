"""Parity with torchvision: same parameter counts and the same outputs after loading
torchvision's (randomly initialised) state dict through cnnlab.weights.convert_torchvision."""

import pytest
import torch
import torchvision
from conftest import n_params

import cnnlab
from cnnlab.errors import WeightsError
from cnnlab.weights import TORCHVISION_MODELS, convert_torchvision

SLOW = {
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "resnet101",
    "resnet152",
    "alexnet_owt",
}


def torchvision_model(name, **kwargs):
    tv_name, _ = TORCHVISION_MODELS[name]
    if tv_name == "googlenet":
        kwargs.setdefault("init_weights", True)
    return torchvision.models.get_model(tv_name, weights=None, **kwargs)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(TORCHVISION_MODELS)]
)
def test_same_outputs_as_torchvision(name):
    tv = torchvision_model(name).eval()
    _, kwargs = TORCHVISION_MODELS[name]
    ours = cnnlab.create_model(name, **kwargs).eval()
    assert n_params(ours) == n_params(tv)
    # BN statistics are identities after init: perturb them so that eval-mode BN is checked too
    with torch.no_grad():
        for m_tv in tv.modules():
            if isinstance(m_tv, torch.nn.BatchNorm2d):
                m_tv.running_mean.uniform_(-0.1, 0.1)
                m_tv.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(convert_torchvision(name, tv.state_dict()))
    x = torch.randn(1 if name in SLOW else 2, 3, 224, 224)  # one image for the heavy ones
    with torch.no_grad():
        diff = (ours(x) - tv(x)).abs().max().item()
    assert diff <= 1e-5


def test_googlenet_bn_without_aux_and_with_other_classes():
    tv = torchvision_model("googlenet_bn", aux_logits=False, num_classes=7).eval()
    ours = cnnlab.create_model("googlenet_bn", aux_logits=False, num_classes=7).eval()
    ours.load_state_dict(convert_torchvision("googlenet_bn", tv.state_dict()))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), tv(x), atol=1e-5)


def test_v1_and_v15_differ_only_in_stride_placement():
    v1 = cnnlab.create_model("resnet50").eval()
    v15 = cnnlab.create_model("resnet50", variant="v1.5").eval()
    v15.load_state_dict(v1.state_dict())  # same keys and shapes
    block = v1.layer2[0]
    assert (block.conv1.stride, block.conv2.stride) == ((2, 2), (1, 1))
    block = v15.layer2[0]
    assert (block.conv1.stride, block.conv2.stride) == ((1, 1), (2, 2))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert not torch.allclose(v1(x), v15(x))


def test_convert_rejects_a_state_dict_for_another_network():
    sd = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(WeightsError, match=r"does not fit resnet34: missing keys: layer1\.2\."):
        convert_torchvision("resnet34", sd)
    sd["fc.weight"] = sd["fc.weight"][:, :10]
    with pytest.raises(WeightsError, match=r"shape mismatches: fc\.weight: expected \(1000, 512\), got \(1000, 10\)"):
        convert_torchvision("resnet18", sd)
    with pytest.raises(WeightsError, match="no torchvision counterpart"):
        convert_torchvision("lenet5", sd)
