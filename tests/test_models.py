"""Every registered model: shapes, finiteness, gradients, num_classes, and the papers' counts."""

import pytest
import torch
from conftest import n_params

import cnnlab
from cnnlab.errors import InputShapeError

# Too heavy for the quick loop on a 2-core CPU (several seconds each): marked slow, CI runs them.
HEAVY = {n for n in cnnlab.list_models() if n.startswith(("vgg", "fcn"))} | {
    "resnet1202",
    "alexnet_owt",
    "alexnet",
    "resnet152",
    "dilated_frontend",
}
# Fully convolutional nets take any size; the dilated front end keeps 1/8 resolution through fc6
# (7x7, 4096 channels): about 100 GMACs at 224x224, so it is checked on 16x16; the FCNs on 64x64
# (424x424 inside at 224 with their 100-pixel padding: 9 s a pass; 264x264 at 64 reaches every layer too)
TEST_SIZE = {"dilated_frontend": (3, 16, 16), **{f"fcn{s}s": (3, 64, 64) for s in (32, 16, 8)}}


def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


def _input(name, batch=2, classes=None):
    c, *hw = TEST_SIZE.get(name, cnnlab.get_model_info(name).input_size)
    if name == "dilated_context" and classes:  # the context module refines `classes` score maps
        c = classes
    return torch.randn(batch, c, *hw)


def _outputs(out):
    return list(out) if isinstance(out, tuple) else [out]


def _expected_shape(name, batch, classes):
    info = cnnlab.get_model_info(name)
    if name.startswith(("fcn", "dilated")):
        return (batch, classes, *TEST_SIZE.get(name, info.input_size)[1:])
    return (batch, classes)


@pytest.mark.parametrize("name", _params(cnnlab.list_models()))
def test_forward_backward_default_size(name, monkeypatch):
    model = cnnlab.create_model(name).train()
    batch = 1 if name in HEAVY else 2  # one image is all a heavy network needs to show its shapes and gradients
    x = _input(name, batch)
    if name == "dilated_frontend":  # oneDNN's backward of fc6 (7x7, dilation 4, 512 -> 4096) on the 2x2
        # map of a 16x16 input takes 12.8 s, PyTorch's own kernel 2.3 s (at training sizes oneDNN is faster)
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    outs = _outputs(model(x))
    classes = cnnlab.get_model_info(name).num_classes
    for out in outs:
        assert out.shape == _expected_shape(name, batch, classes)
        assert torch.isfinite(out).all()
    sum(o.float().sum() for o in outs).backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def shape_device(name: str) -> torch.device:
    """Where a test of shapes alone runs a model: ImageNet-sized networks on the meta device (nothing
    is computed); the small ones on the CPU, where they run faster than the meta device's per-layer
    bookkeeping (ResNet-1202 on 32x32: 17 s on meta, 2 s on the CPU)."""
    big = cnnlab.get_model_info(name).input_size[-1] >= 200
    return torch.device("meta" if big else "cpu")


@pytest.mark.parametrize("name", _params(["resnet1202"]) + [n for n in cnnlab.list_models() if n != "resnet1202"])
def test_other_num_classes_and_reset_classifier(name):
    with shape_device(name):
        model = cnnlab.create_model(name, num_classes=5).eval()
        assert model(_input(name, 1, 5)).shape == _expected_shape(name, 1, 5)
        if hasattr(model, "forward_features"):
            feats = model.forward_features(_input(name, 1))
            assert model.forward_head(feats).shape == (1, 5)
            assert model.forward_head(feats, pre_logits=True).ndim == 2
        if name == "dilated_context":  # every layer has `classes` channels: no classifier to reset
            return
        model.reset_classifier(3)
        assert model(_input(name, 1, 3)).shape == _expected_shape(name, 1, 3)


@pytest.mark.parametrize("name", [n for n in cnnlab.list_models() if n != "mlp"])
def test_wrong_channels_raise_input_shape_error(name):
    info = cnnlab.get_model_info(name)
    c, h, w = info.input_size
    device = shape_device(name)
    with device:
        model = cnnlab.create_model(name).eval()
    with pytest.raises(InputShapeError, match=rf"^{name} expects input \(N, {c}, "):
        model(torch.randn(1, c + 1, h, w, device=device))
    with pytest.raises(InputShapeError, match="add a batch dimension"):
        model(torch.randn(c, h, w, device=device))


def test_input_shape_error_message():
    model = cnnlab.create_model("lenet5")
    with pytest.raises(InputShapeError) as e:
        model(torch.randn(4, 3, 28, 28))
    assert str(e.value) == "lenet5 expects input (N, 1, 32, 32), got (N, 3, 28, 28)"
    assert isinstance(e.value, ValueError)
    with pytest.raises(InputShapeError, match=r"alexnet expects input \(N, 3, 227, 227\), got \(N, 3, 224, 224\)"):
        cnnlab.create_model("alexnet")(torch.randn(1, 3, 224, 224))
    with pytest.raises(InputShapeError, match=r"resnet50 expects input \(N, 3, H, W\), got \(N, 1, 64, 64\)"):
        cnnlab.create_model("resnet50")(torch.randn(1, 1, 64, 64))
    with pytest.raises(InputShapeError, match=r"mlp expects input \(N, 784\), got \(N, 1, 32, 32\)"):
        cnnlab.create_model("mlp")(torch.randn(2, 1, 32, 32))


# Parameter counts: the papers' numbers and hand calculations.
def meta_params(name, **kwargs):
    with torch.device("meta"):
        return n_params(cnnlab.create_model(name, **kwargs))


def test_alexnet_parameter_count():
    # conv 34,944 + 307,456 + 885,120 + 663,936 + 442,624; fc 37,752,832 + 16,781,312 + 4,097,000
    assert meta_params("alexnet") == 60_965_224
    assert meta_params("alexnet_owt") == 61_100_840  # torchvision's documented count


@pytest.mark.parametrize(
    "depth, paper_millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7), (1202, 19.4)]
)
def test_cifar_resnet_parameter_counts_match_table_6(depth, paper_millions):
    count = meta_params(f"resnet{depth}")
    digits = 1 if paper_millions >= 1 else 2
    assert round(count / 1e6, digits) == paper_millions
    if depth <= 110:  # option A shortcuts add nothing: plain nets have the same count
        assert meta_params(f"plain{depth}") == count


@pytest.mark.parametrize(
    "name, millions",
    [("vgg11", 133), ("vgg11_lrn", 133), ("vgg13", 133), ("vgg16_c", 134), ("vgg16", 138), ("vgg19", 144)],
)
def test_vgg_parameter_counts_match_table_2(name, millions):
    assert round(meta_params(name) / 1e6) == millions


def test_resnet_counts_and_flops_independent_of_variant():
    # torchvision's documented counts; v1 and v1.5 differ in where the stride is, not in weights
    for depth, count in [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032), (101, 44_549_160), (152, 60_192_808)]:
        assert meta_params(f"resnet{depth}") == count == meta_params(f"resnet{depth}", variant="v1.5")


def test_googlenet_parameter_counts():
    # Weights of an inception module by hand, 3a: 192*64 + 192*96 + 96*128*9 + 192*16 + 16*32*25
    # + 192*32 = 163,328 = 159.5K in the paper's K of 1024 (Table 1: 159K; 3b: 379.0K vs 380K).
    # Table 1's later rows do not follow from its own channel counts (4c: 497.5K by hand vs
    # 463K printed, 5b: 1409.0K vs 1388K); we build the channel counts, not the totals.
    from cnnlab.models import InceptionModule
    from cnnlab.models.googlenet import INCEPTION_CFGS

    for stage, weights in [("3a", 163_328), ("3b", 388_096), ("4c", 509_440), ("5b", 1_442_816)]:
        module = InceptionModule(*INCEPTION_CFGS[stage])
        assert sum(p.numel() for n, p in module.named_parameters() if n.endswith("weight")) == weights
    assert meta_params("googlenet", aux_logits=False) == 6_998_552
    assert meta_params("googlenet_bn", aux_logits=False) == 6_624_904  # torchvision's documented count


def test_nin_and_modern_lenet_counts():
    # mlpconv 1: 14,592 + 30,880 + 15,456; 2: 460,992 + 37,056 x 2; 3: 331,968 + 37,056 + 1,930
    assert meta_params("nin_cifar") == 966_986
    # conv 156 + 2,416; fc 48,120 + 10,164 + 850, for both input sizes
    assert meta_params("lenet5_modern") == meta_params("lenet5_modern", input_size=32) == 61_706
