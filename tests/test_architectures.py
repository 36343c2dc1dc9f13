"""The architectures' defining details, each checked against its paper."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.models import GoogLeNetOutputs, InceptionModule
from cnnlab.models.fcn import bilinear_kernel
from cnnlab.models.layers import local_response_norm


# AlexNet (Krizhevsky et al. 2012)
def test_lrn_follows_the_papers_formula():
    # b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta, Section 3.3
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    a = torch.randn(1, 12, 3, 3) * 30
    expected = torch.empty_like(a)
    for i in range(12):
        lo, hi = max(0, i - n // 2), min(11, i + n // 2)
        expected[:, i] = a[:, i] / (k + alpha * (a[:, lo : hi + 1] ** 2).sum(1)) ** beta
    assert torch.allclose(local_response_norm(n, alpha, beta, k)(a), expected, rtol=1e-5)


def test_alexnet_layer_shapes_and_groups():
    m = cnnlab.create_model("alexnet")
    x = torch.randn(1, 3, 227, 227)
    x = m.conv1(x)
    assert x.shape[1:] == (96, 55, 55)  # Fig. 2
    x = m.pool(m.norm1(m.relu(x)))
    assert x.shape[1:] == (96, 27, 27)  # overlapping 3/2 pooling
    x = m.pool(m.norm2(m.relu(m.conv2(x))))
    assert x.shape[1:] == (256, 13, 13)
    assert m.forward_features(torch.randn(1, 3, 227, 227)).shape[1:] == (256, 6, 6)
    assert [c.groups for c in (m.conv1, m.conv2, m.conv3, m.conv4, m.conv5)] == [1, 2, 1, 2, 2]
    assert (m.conv2.bias == 1).all() and (m.conv3.bias == 0).all() and (m.fc7.bias == 1).all()
    assert abs(m.fc6.weight.std().item() - 0.01) < 1e-3


# VGG (Simonyan & Zisserman 2014)
@pytest.mark.parametrize(
    "name, convs, one_by_one, lrn",
    [
        ("vgg11", 8, 0, 0),
        ("vgg11_lrn", 8, 0, 1),
        ("vgg13", 10, 0, 0),
        ("vgg16_c", 13, 3, 0),
        ("vgg16", 13, 0, 0),
        ("vgg19", 16, 0, 0),
    ],
)
def test_vgg_configurations(name, convs, one_by_one, lrn):
    with torch.device("meta"):
        m = cnnlab.create_model(name)
    conv_layers = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert len(conv_layers) == convs and len(conv_layers) + 3 == int(name[3:5])  # weight layers
    assert sum(c.kernel_size == (1, 1) for c in conv_layers) == one_by_one
    assert sum(isinstance(c, nn.LocalResponseNorm) for c in m.modules()) == lrn
    assert sum(isinstance(c, nn.MaxPool2d) for c in m.modules()) == 5


# NiN (Lin et al. 2013)
def test_nin_has_no_fully_connected_layer_and_pools_globally():
    m = cnnlab.create_model("nin_cifar").eval()
    assert not any(isinstance(c, nn.Linear) for c in m.modules())
    feats = m.forward_features(torch.randn(2, 3, 32, 32))
    assert feats.shape == (2, 192, 8, 8)  # 32 -> 16 -> 8 with 3x3/2 ceil pooling
    with torch.no_grad():
        scores = m.classifier(feats)
        assert torch.allclose(m.forward_head(feats), scores.mean((2, 3)))


# GoogLeNet (Szegedy et al. 2014)
def test_googlenet_stage_shapes_follow_table_1():
    m = cnnlab.create_model("googlenet").eval()
    shapes = {}
    hooks = [
        getattr(m, f"inception{s}").register_forward_hook(
            lambda mod, i, o, s=s: shapes.__setitem__(s, tuple(o.shape[1:]))
        )
        for s in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
    ]
    m(torch.randn(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert shapes == {
        "3a": (256, 28, 28),
        "3b": (480, 28, 28),
        "4a": (512, 14, 14),
        "4b": (512, 14, 14),
        "4c": (512, 14, 14),
        "4d": (528, 14, 14),
        "4e": (832, 14, 14),
        "5a": (832, 7, 7),
        "5b": (1024, 7, 7),
    }


def test_googlenet_auxiliary_classifiers():
    m = cnnlab.create_model("googlenet")
    out = m.train()(torch.randn(2, 3, 224, 224))
    assert isinstance(out, GoogLeNetOutputs)
    assert out.logits.shape == out.aux1.shape == out.aux2.shape == (2, 1000)
    assert m.aux1.dropout.p == 0.7 and m.dropout.p == 0.4
    assert isinstance(m.eval()(torch.randn(1, 3, 224, 224)), torch.Tensor)
    bare = cnnlab.create_model("googlenet", aux_logits=False)
    assert not any("aux" in k for k in bare.state_dict())
    assert isinstance(bare.train()(torch.randn(2, 3, 224, 224)), torch.Tensor)


def test_five_by_five_branch_is_true_5x5_in_the_paper_and_3x3_in_torchvision():
    with torch.device("meta"):
        paper = cnnlab.create_model("googlenet")
        tv = cnnlab.create_model("googlenet_bn")
    assert paper.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert tv.inception3a.branch3[1].conv.kernel_size == (3, 3)
    assert sum(isinstance(c, nn.LocalResponseNorm) for c in paper.modules()) == 2
    assert not any(isinstance(c, nn.LocalResponseNorm) for c in tv.modules())


def test_inception_module_naive_and_with_bottlenecks():
    x = torch.randn(1, 192, 28, 28)
    m = InceptionModule(192, 64, 96, 128, 16, 32, 32)
    assert m(x).shape == (1, 256, 28, 28) and m.out_channels == 256
    naive = InceptionModule(192, 64, None, 128, None, 32, None, naive=True)
    assert naive(x).shape == (1, 64 + 128 + 32 + 192, 28, 28)
    # the bottlenecks' point: 1x1 reductions cut the weights of the 3x3 and 5x5 paths
    weights = lambda mod: sum(p.numel() for n, p in mod.named_parameters() if n.endswith("weight"))
    assert weights(naive) == 192 * 64 + 192 * 128 * 9 + 192 * 32 * 25
    assert weights(m) < weights(naive) / 2
    with pytest.raises(ValueError, match="naive inception module has no reductions"):
        InceptionModule(192, 64, 96, 128, 16, 32, 32, naive=True)


# ResNet (He et al. 2015)
def test_cifar_resnet_structure_and_option_a_shortcut():
    m = cnnlab.create_model("resnet20")
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert len(convs) + 1 == 20  # 6n + 2 weighted layers with n = 3
    assert not any(isinstance(c, nn.Conv2d) and c.kernel_size == (1, 1) for c in m.modules())
    x = torch.randn(2, 3, 32, 32)
    h = m.relu(m.bn1(m.conv1(x)))
    sizes = []
    for stage in (m.layer1, m.layer2, m.layer3):
        h = stage(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    short = m.layer2[0].downsample
    y = short(torch.arange(16 * 4 * 4.0).view(1, 16, 4, 4))
    assert y.shape == (1, 32, 2, 2)
    assert (y[:, :8] == 0).all() and (y[:, 24:] == 0).all()  # the new channels are zeros
    assert torch.equal(y[0, 8:24], torch.arange(16 * 4 * 4.0).view(16, 4, 4)[:, ::2, ::2])


def test_plain_net_is_the_resnet_without_shortcuts():
    res, plain = cnnlab.create_model("resnet20").eval(), cnnlab.create_model("plain20").eval()
    plain.load_state_dict(res.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(res(x), plain(x))
        for b in res.modules():
            if hasattr(b, "shortcut"):
                b.shortcut = False
        assert torch.allclose(res(x), plain(x))


# FCN (Long et al. 2015) and dilated convolutions (Yu & Koltun 2016)
@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("size", [(37, 50), (160, 123)])
def test_fcn_output_has_the_input_size(name, size):
    m = cnnlab.create_model(name, num_classes=3).eval()
    with torch.no_grad():
        nn.init.normal_(m.score_fr.weight, std=0.01)
        assert m(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_fcn_upsampling_is_bilinear_at_init():
    # a x2 transposed convolution with the bilinear kernel interpolates a linear ramp exactly
    up = F.conv_transpose2d(
        torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8), bilinear_kernel(1, 4), stride=2, padding=1
    )
    row = up[0, 0, 4]
    assert torch.allclose(row[1:-1], torch.arange(14.0)[:14] / 2 + 0.25)
    k = bilinear_kernel(2, 4)
    assert (k[0, 1] == 0).all() and torch.allclose(k[0, 0], k[1, 1])  # per class, no mixing
    with torch.device("meta"):
        m = cnnlab.create_model("fcn8s")
    assert [type(mod).__name__ for mod in (m.upscore2, m.upscore_pool4, m.upscore)] == ["ConvTranspose2d"] * 3
    assert m.upscore.stride == (8, 8) and m.upscore.kernel_size == (16, 16)
    assert all(p.requires_grad for p in m.upscore.parameters())


def test_context_module_identity_init_and_receptive_field():
    m = cnnlab.create_model("dilated_context", num_classes=4)
    x = torch.randn(1, 4, 80, 80)
    with torch.no_grad():
        assert torch.allclose(m(x), x.clamp(min=0))
        for conv in [*m.layers, m.final]:
            conv.weight.fill_(0.01)
        base = m(torch.ones(1, 4, 80, 80))
        poke = torch.ones(1, 4, 80, 80)
        poke[0, :, 40, 40] = 5.0
        changed = (m(poke) - base).abs().sum((0, 1)) > 0
    rows = changed.any(1).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (40 - 33, 40 + 33)  # receptive field 67
    assert [c.dilation[0] for c in m.layers] == [1, 1, 2, 4, 8, 16, 1]
