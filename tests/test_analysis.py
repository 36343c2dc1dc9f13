"""The analyser against hand calculations, the papers, the lectures and fvcore."""

import itertools
import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from fvcore.nn import FlopCountAnalysis  # test dependency, for the cross-check
from torch import nn

import cnnlab
from cnnlab.analysis import (
    analyze,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    pool_output_size,
    receptive_field,
    training_memory,
)
from cnnlab.errors import CnnlabError, ConvArithmeticError
from cnnlab.models import InceptionModule
from cnnlab.registry import list_models

# The lectures' (CS231n) VGG-16 table: memory of the input and of every conv and pool output.
CS231N_VGG16_MEMORY = (
    [224 * 224 * 3]
    + [224 * 224 * 64] * 2
    + [112 * 112 * 64]
    + [112 * 112 * 128] * 2
    + [56 * 56 * 128]
    + [56 * 56 * 256] * 3
    + [28 * 28 * 256]
    + [28 * 28 * 512] * 3
    + [14 * 14 * 512]
    + [14 * 14 * 512] * 3
    + [7 * 7 * 512]
    + [4096, 4096, 1000]
)


def test_vgg16_totals_and_the_lectures_memory_table():
    a = analyze("vgg16")
    assert a.totals["params"] == 138_357_544
    assert a.totals["macs"] == 15_470_264_320 and a.totals["flops"] == 2 * 15_470_264_320
    kinds = a.breakdown()
    assert kinds["conv"]["macs"] == 15_346_630_656 and kinds["fc"]["macs"] == 123_633_664
    # "most compute is in the convolutions, most parameters in the fully connected layers"
    assert kinds["conv"]["macs"] / a.totals["macs"] > 0.99
    assert kinds["fc"]["params"] / a.totals["params"] > 0.89
    own = [r.activations for r in a.layers if r.activation_bytes]  # in-place ReLU, eval dropout: none
    assert [a.input_size[0] * 224 * 224] + own == CS231N_VGG16_MEMORY
    assert a.totals["activations"] == sum(CS231N_VGG16_MEMORY) == 15_237_608
    assert a.totals["activation_bytes"] == 4 * 15_237_608
    # The slide's "TOTAL MEMORY: 24M * 4 bytes" does not follow from its own rows (15.2M)
    assert round(sum(CS231N_VGG16_MEMORY) / 1e6, 1) == 15.2
    assert a.totals["depth"] == 16


def test_vgg16_receptive_fields():
    a = analyze("vgg16")
    convs_and_pools = [r for r in a.layers if r.kind in ("conv", "pool")]
    rfs = [r.receptive_field[0] for r in convs_and_pools]
    assert rfs[:3] == [3, 5, 6]  # conv1_1, conv1_2, pool1
    assert rfs[-1] == 212 and convs_and_pools[-1].jump == (32.0, 32.0)  # pool5
    assert all(r.receptive_field is None for r in a.layers if r.kind == "fc")


def test_alexnet_rows_from_the_lectures():
    a = analyze("alexnet")
    conv1, pool1 = a.layers[0], next(r for r in a.layers if r.kind == "pool")
    assert (conv1.name, conv1.output_shape, conv1.params) == ("conv1", (1, 96, 55, 55), 34_944)
    assert (conv1.kernel, conv1.stride, conv1.groups) == ((11, 11), (4, 4), 1)
    assert conv1.macs == 55 * 55 * 96 * 3 * 11 * 11
    assert pool1.output_shape == (1, 96, 27, 27) and pool1.receptive_field == (19, 19)
    conv2 = next(r for r in a.layers if r.name == "conv2")
    assert conv2.groups == 2 and conv2.macs == 27 * 27 * 256 * 48 * 5 * 5  # each tower sees 48 maps
    assert a.totals["params"] == 60_965_224 and a.totals["depth"] == 8


def test_lenet5_layers_and_the_papers_connection_counts():
    a = analyze("lenet5")
    rows = {r.name: r for r in a.layers}
    assert rows["c1"].params == 156 and rows["c1"].macs == 28 * 28 * 6 * 25
    assert rows["c1"].macs + rows["c1"].activations == 122_304  # the paper's C1 connections (with bias)
    assert rows["c3"].params == 1_516 and rows["c3"].macs + rows["c3"].activations == 151_600
    assert rows["c5"].receptive_field == (32, 32)  # C5 sees the whole 32x32 input
    assert a.totals["params"] == 60_000


def test_bottleneck_example_of_the_lectures():
    # 256 -> 64 -> 256 around a 3x3 against a plain 3x3 on 256 channels, per output pixel
    bottleneck = nn.Sequential(
        nn.Conv2d(256, 64, 1, bias=False),
        nn.Conv2d(64, 64, 3, padding=1, bias=False),
        nn.Conv2d(64, 256, 1, bias=False),
    )
    plain = nn.Conv2d(256, 256, 3, padding=1, bias=False)
    pixels = 14 * 14
    assert analyze(bottleneck, (256, 14, 14)).totals["macs"] == 69_632 * pixels
    assert analyze(plain, (256, 14, 14)).totals["macs"] == 589_824 * pixels


def test_inception_module_operation_counts_of_the_lectures():
    naive = InceptionModule(256, 128, None, 192, None, 96, None, naive=True)
    a = analyze(naive, (256, 28, 28))
    assert a.layers[-1].type == "cat" and a.layers[-1].output_shape == (1, 672, 28, 28)  # 128+192+96+256
    assert a.totals["macs"] == 854_196_224  # slide: "854M ops"
    reduced = InceptionModule(256, 128, 64, 192, 64, 96, 64)
    # 28*28*(3*64*256 + 128*256 + 192*9*64 + 96*25*64): the slide's "353M ops" is an arithmetic slip
    assert analyze(reduced, (256, 28, 28)).totals["macs"] == 271_351_808


def test_googlenet_train_mode_adds_the_auxiliary_heads():
    eval_, train = analyze("googlenet"), analyze("googlenet", mode="train")
    aux = (16 * 128 * 512 + 2048 * 1024 + 1024 * 1000) + (16 * 128 * 528 + 2048 * 1024 + 1024 * 1000)
    assert train.totals["macs"] - eval_.totals["macs"] == aux
    assert not any(r.name.startswith("aux") for r in eval_.layers)
    assert any(r.name == "aux1.adaptive_avg_pool2d" for r in train.layers)  # a functional op, by name
    assert eval_.totals["depth"] == 22  # "22 layers deep when counting only layers with parameters"
    assert eval_.totals["params"] == train.totals["params"] == 13_378_280
    # the auxiliary classifiers' parameters, by hand: 1x1 conv to 128, fc 2048 -> 1024, fc 1024 -> 1000
    aux_params = sum(c * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000 for c in (512, 528))
    assert eval_.totals["unused_params"] == aux_params == 6_379_728 and eval_.unused == ("aux1", "aux2")
    assert train.totals["unused_params"] == 0 and train.unused == ()
    assert "not run in eval mode: 6,379,728 params (47.7%) in aux1, aux2" in eval_.table()
    # the rows' parameters and the unused ones make up the whole model, in either mode
    for a in (eval_, train):
        assert sum(r.params for r in a.layers) + a.totals["unused_params"] == 13_378_280


def test_every_zoo_model_runs_all_its_parameters_in_training():
    """Nothing else in the zoo has parameters a forward pass leaves out (a layer defined and
    never called would show here), and the rows account for every parameter."""
    for name in list_models():
        for mode in ("train", "eval"):
            a = analyze(name, mode=mode)
            assert a.totals["unused_params"] == (
                6_379_728
                if name == "googlenet" and mode == "eval"
                else 6_379_984
                if name == "googlenet_bn" and mode == "eval"
                else 0
            ), name
            assert sum(r.params for r in a.layers) + a.totals["unused_params"] == a.totals["params"], name


def test_a_layer_defined_but_never_called_is_named():
    class Forgetful(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = torch.nn.Linear(4, 2), torch.nn.Sequential(torch.nn.Linear(4, 3))

        def forward(self, x):
            return self.used(x)

    a = analyze(Forgetful(), (4,))
    assert a.totals["unused_params"] == 15 and a.unused == ("spare",)


def test_residual_adds_and_functional_ops_are_rows():
    a = analyze(torchvision.models.resnet18(), (3, 224, 224))
    adds = [r for r in a.layers if r.type == "add_"]
    assert len(adds) == 8 and adds[0].name == "layer1.0.add_"
    assert adds[0].activation_bytes == 0  # torchvision's `out += identity` is in place
    assert a.totals["macs"] == 1_814_073_344  # torchvision: 1.81 GFLOPS (multiply-adds)

    class UserNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 5, padding=2)

        def forward(self, x):
            y = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], 1)
            return y + y.mean(1, keepdim=True)

    rows = analyze(UserNet(), (3, 16, 16)).layers
    assert [r.type for r in rows] == ["Conv2d", "relu", "Conv2d", "relu", "cat", "mean", "add"]
    assert rows[4].receptive_field == (5, 5) and rows[4].activation_bytes == 16 * 16 * 16 * 4


def test_transposed_and_dilated_convs():
    up = nn.ConvTranspose2d(21, 21, 4, stride=2, padding=1, bias=False)
    a = analyze(up, (21, 10, 10))
    assert a.layers[0].output_shape == (1, 21, 20, 20)
    assert a.totals["macs"] == 21 * 10 * 10 * 21 * 16  # every input value meets a 4x4 kernel per output map
    assert a.layers[0].jump == (0.5, 0.5)
    ctx = analyze("dilated_context")
    assert [r.receptive_field[0] for r in ctx.layers if r.kind == "conv"] == [3, 5, 9, 17, 33, 65, 67, 67]
    assert [r.dilation for r in ctx.layers if r.kind == "conv"][2] == (2, 2)
    fcn = analyze("fcn8s", input_size=(3, 64, 64))
    assert fcn.output_shape == (1, 21, 64, 64)  # cropped (a view) from the last upsampling's 152x152
    assert fcn.layers[-1].type == "ConvTranspose2d" and fcn.layers[-1].stride == (8, 8)


def test_memory_of_in_place_ops_views_and_dropout():
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Flatten(), nn.ReLU())
    eval_rows = analyze(net, (10,)).layers
    assert [r.activation_bytes for r in eval_rows] == [80, 0, 0, 0, 80]
    train_rows = analyze(net, (10,), mode="train", batch_size=4).layers
    assert train_rows[2].activation_bytes == 4 * 20 * 4  # a dropout mask-applied copy in training
    half = analyze(net, (10,), dtype=torch.float16)
    assert half.layers[0].activation_bytes == 40 and half.totals["activation_bytes"] == 20 + 40 + 40


def test_model_is_left_as_it_was():
    model = torchvision.models.resnet18().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    analyze(model, (3, 64, 64))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert not model._forward_hooks and not model.layer1[0].conv1._forward_pre_hooks


def test_outputs_json_csv_markdown():
    a = analyze("lenet5_modern")
    data = json.loads(a.to_json())
    assert data["units"]["flops"] == "2 x macs" and data["totals"]["params"] == 61_706
    assert data["layers"][0]["output_shape"] == [1, 6, 28, 28] and data["layers"][0]["kernel"] == [5, 5]
    csv_lines = a.table("csv").splitlines()
    assert csv_lines[0].startswith("layer,type,kind,output,params") and len(csv_lines) == len(a.layers) + 1
    md = a.table("markdown")
    assert md.startswith("| layer | type |") and "conv1" in md
    assert "params 61,706" in str(a)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(
        CnnlabError, match=r"vgg16 takes inputs of 3 dimensions without the batch \(3x224x224\), got 3x224"
    ):
        analyze("vgg16", input_size=(3, 224))
    with pytest.raises(CnnlabError, match="lenet5 expects input"):
        analyze("lenet5", input_size=(3, 32, 32))
    with pytest.raises(CnnlabError, match="give input_size"):
        analyze(nn.Conv2d(3, 3, 3))
    with pytest.raises(CnnlabError, match="mode must be"):
        analyze("lenet5", mode="test")
    with pytest.raises(CnnlabError, match=r"^alexnet_owt cannot take input 1x3x16x16: "):
        analyze("alexnet_owt", (3, 16, 16))  # the second pooling gets a 1x1 map


def test_training_memory():
    m = training_memory("resnet18", batch_size=8, optimizer="adam")
    weights = 11_689_512 * 4
    assert m["gradients"] == weights and m["optimizer_state"] == 2 * weights
    assert m["weights"] == weights + 4 * 9_600 + 8 * 20  # BN running statistics and counters
    sgd = training_memory("resnet18", batch_size=8, optimizer="sgd")
    assert sgd["optimizer_state"] == 0 and sgd["activations"] == m["activations"]
    # saved activations grow linearly with the batch (plus BN's per-channel saved statistics)
    a8, a16, a24 = (training_memory("resnet18", batch_size=b)["activations"] for b in (8, 16, 24))
    assert a24 - a16 == a16 - a8 > 0.9 * a8
    assert m["total"] == sum(v for k, v in m.items() if k != "total")


def test_conv_arithmetic():
    assert conv_output_size(227, 11, stride=4) == 55
    assert conv_output_size(32, 5) == 28 and conv_output_size(28, 5, padding=2) == 28
    assert conv_output_size(7, 3, dilation=2) == 3
    with pytest.raises(
        ConvArithmeticError, match=r"= 54.25 is not an integer.*input sizes that fit unpadded: 223, 227"
    ):
        conv_output_size(224, 11, stride=4)
    with pytest.raises(ConvArithmeticError, match="paddings that fit: 2, 5$"):
        conv_output_size(32, 3, stride=3, padding=1)
    assert conv_output_size(224, 11, stride=4, strict=False) == 54  # PyTorch's floor
    assert pool_output_size(55, 3, 2) == 27 and pool_output_size(112, 3, 2, ceil_mode=True) == 56
    assert pool_output_size(14, 3, 2, ceil_mode=True) == 7 and pool_output_size(28, 2) == 14
    assert conv_transpose_output_size(10, 4, stride=2, padding=1) == 20
    assert conv_transpose_output_size(7, 64, stride=32) == 256
    with pytest.raises(ConvArithmeticError, match="output_padding"):
        conv_transpose_output_size(7, 3, stride=2, output_padding=2)
    assert receptive_field([(3, 1)] * 3) == [(3, 1), (5, 1), (7, 1)]
    assert receptive_field([(3, 1, 1), (3, 1, 1), (3, 1, 2), (3, 1, 4)])[-1] == (17, 1)
    c = 64
    assert 3 * conv_params(3, c, c, bias=False) == 27 * c * c and conv_params(7, c, c, bias=False) == 49 * c * c
    assert conv_params(5, 96, 256, groups=2) == 307_456  # AlexNet conv2


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation",
    [(227, 11, 4, 0, 1), (56, 3, 1, 1, 1), (13, 3, 2, 0, 1), (64, 3, 2, 1, 2), (9, 5, 1, 0, 2)],
)
def test_conv_arithmetic_matches_pytorch(size, kernel, stride, padding, dilation):
    conv = nn.Conv2d(1, 1, kernel, stride, padding, dilation)
    out = conv(torch.zeros(1, 1, size, size, device="meta")).shape[-1]
    assert conv_output_size(size, kernel, stride, padding, dilation, strict=False) == out
    pool = nn.MaxPool2d(kernel, stride, min(padding, kernel // 2), dilation, ceil_mode=True)
    assert (
        pool_output_size(size, kernel, stride, min(padding, kernel // 2), dilation, ceil_mode=True)
        == pool(torch.zeros(1, 1, size, size)).shape[-1]
    )


FVCORE_MODELS = ["alexnet_owt", "vgg11", "googlenet", "resnet18", "resnet50", "nin_cifar", "fcn8s"]


@pytest.mark.slow
@pytest.mark.parametrize("name", FVCORE_MODELS)
def test_multiply_adds_agree_with_fvcore(name):
    """fvcore counts one multiply-add per conv/linear MAC (no bias) like cnnlab, but also counts
    batch norm (1 per input value in eval), adaptive pooling and upsampling; compare the
    operators both count the same way."""
    info = cnnlab.get_model_info(name)
    size = (3, 96, 96) if name == "fcn8s" else info.input_size
    model = cnnlab.create_model(name).eval()
    counted = FlopCountAnalysis(model, torch.zeros(1, *size))
    counted.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    ops = counted.by_operator()
    ours = analyze(model, size)
    kinds = ours.breakdown()
    assert ops.get("conv", 0) == kinds["conv"]["macs"]
    assert ops.get("linear", 0) + ops.get("addmm", 0) == kinds["fc"]["macs"]


@pytest.mark.parametrize("build, weights", [("vit_b_16", "ViT_B_16_Weights"), ("swin_t", "Swin_T_Weights")])
def test_transformer_multiply_adds_match_torchvision(build, weights):
    with torch.device("meta"):  # nothing allocated
        model = getattr(torchvision.models, build)()
    a = analyze(model, (3, 224, 224))
    published = getattr(torchvision.models, weights).IMAGENET1K_V1.meta["_ops"]  # GFLOPS, counted as multiply-adds
    assert round(a.totals["macs"] / 1e9, 3) == published


def test_attention_and_einsum_multiply_adds_by_hand():
    e, length, source, kdim = 16, 5, 7, 6

    class Attend(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = torch.nn.MultiheadAttention(e, 4, kdim=kdim, vdim=kdim)

        def forward(self, x):  # x: (1, length + source, e + kdim); queries from the first rows
            q, kv = x[0, :length, :e].unsqueeze(1), x[0, length:, e:].unsqueeze(1)  # sequence first
            return self.mha(q, kv, kv)[0]

    a = analyze(Attend(), (length + source, e + kdim))
    (row,) = [r for r in a.layers if r.type == "MultiheadAttention"]
    projections = length * e * e + 2 * source * e * kdim + length * e * e  # q, k, v and the output
    assert row.macs == projections + 2 * length * source * e
    assert row.params == 2 * e * e + 2 * e * kdim + 4 * e  # out_proj's weights are the row's too

    class Attention(torch.nn.Module):
        def forward(self, x):  # (1, 8, 5, 16): 8 x 5 queries, 5 keys, 16 + 16 multiply-adds each
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    class Contract(torch.nn.Module):
        def forward(self, x):  # 8 x 5 x 16 x 5
            return torch.einsum("bij,bjk->bik", x[0], x[0].transpose(1, 2)).unsqueeze(0)

    a = analyze(torch.nn.Sequential(Attention(), Contract()), (8, 5, 16))
    assert [r.macs for r in a.layers] == [8 * 5 * 5 * 32, 8 * 5 * 16 * 5]


def test_recurrent_layers_by_hand():
    # an RNN's `input_size` attribute is its number of features, not a declared (C, H, W)
    lstm = torch.nn.LSTM(10, 20, num_layers=2, bidirectional=True, batch_first=True)
    a = analyze(lstm, (5, 10))  # 5 steps of 10 features
    assert a.totals["macs"] == 5 * 2 * 4 * 20 * ((10 + 20) + (40 + 20))  # layer 2 reads both directions
    assert a.totals["params"] == sum(p.numel() for p in lstm.parameters())
    projected = analyze(torch.nn.LSTM(10, 20, proj_size=8), (5, 10))
    assert projected.totals["macs"] == 5 * (4 * 20 * (10 + 8) + 20 * 8)
    assert analyze(torch.nn.GRU(10, 20), (5, 10)).totals["macs"] == 5 * 3 * 20 * (10 + 20)
    assert analyze(torch.nn.RNN(10, 20), (5, 10)).totals["macs"] == 5 * 20 * (10 + 20)


def measured_field(model: torch.nn.Module, size: tuple[int, ...]) -> tuple:
    """The receptive field measured from gradients: for every output position, the span of the
    input pixels whose gradient is non-zero (over a batch of random inputs, so that max pooling
    and ReLU pass some gradient through every pixel they can), the largest span per axis; None
    for an axis every output sees whole, and None when that holds for every axis."""
    model = model.double().eval()
    x = torch.randn(16, *size, dtype=torch.float64, requires_grad=True)
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    spatial = out.shape[2:] if out.ndim > 2 else ()
    spans = [0] * (len(size) - 1)
    for pos in itertools.product(*(range(n) for n in spatial)) if spatial else [()]:
        (grad,) = torch.autograd.grad(out[(slice(None), slice(None), *pos)].sum(), x, retain_graph=True)
        seen = grad.abs().sum((0, 1)) > 0
        for axis in range(seen.ndim):
            hits = seen.flatten(0, axis - 1).any(0) if axis else seen
            hits = hits.flatten(1).any(1) if hits.ndim > 1 else hits
            index = hits.nonzero().flatten()
            spans[axis] = max(spans[axis], int(index.max() - index.min() + 1))
    whole = [s == n for s, n in zip(spans, size[1:])]
    return None if all(whole) else tuple(None if w else s for s, w in zip(spans, whole))


class Ops(torch.nn.Module):
    """A small network ending in one operation of the kind under test."""

    def __init__(self, *layers, after=None):
        super().__init__()
        self.layers, self.after = torch.nn.Sequential(*layers), after

    def forward(self, x):
        x = self.layers(x)
        return self.after(x) if self.after else x


class Branches(torch.nn.Module):
    """Two branches of different fields joined by an add or a concatenation."""

    def __init__(self, join):
        super().__init__()
        self.a, self.b, self.join = torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Conv2d(1, 2, 7, padding=3), join

    def forward(self, x):
        return self.join(self.a(x), self.b(x))


class Recurrent(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.conv, self.rnn = torch.nn.Conv1d(2, 4, 3), kind(4, 5, batch_first=True)

    def forward(self, x):
        return self.rnn(self.conv(x).transpose(1, 2))[0].transpose(1, 2)


C = torch.nn.Conv2d
FIELD_CASES = {
    "conv": (Ops(C(1, 2, 3, padding=1), C(2, 2, 3, stride=2), C(2, 1, 3, dilation=2)), (1, 40, 40)),
    "conv, 5x3 kernel": (Ops(C(1, 1, (5, 3))), (1, 20, 20)),
    "max pool": (Ops(C(1, 2, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), C(2, 1, 3)), (1, 30, 30)),
    "avg pool, padded": (Ops(C(1, 2, 3), torch.nn.AvgPool2d(3, stride=2, padding=1), C(2, 1, 3)), (1, 30, 30)),
    "transposed conv": (Ops(C(1, 2, 3, stride=2), torch.nn.ConvTranspose2d(2, 1, 4, stride=2)), (1, 30, 30)),
    "adaptive pool, down": (Ops(C(1, 2, 3), torch.nn.AdaptiveAvgPool2d(7), C(2, 1, 3)), (1, 30, 30)),
    # 14 to 4, as GoogLeNet's auxiliary heads: windows of 4 (a stride of 3 and a kernel of 5 said 5)
    "adaptive pool, down 14 to 4": (Ops(C(1, 2, 3), torch.nn.AdaptiveAvgPool2d(4)), (1, 16, 16)),
    "adaptive pool, up 2x": (Ops(C(1, 2, 3, stride=2), torch.nn.AdaptiveAvgPool2d(18), C(2, 1, 3)), (1, 20, 20)),
    # 9 to 12: windows of 1 or 2 (after a jump that is not a whole number, later layers get an upper bound)
    "adaptive pool, up 9 to 12": (Ops(C(1, 2, 3, stride=2), torch.nn.AdaptiveAvgPool2d(12)), (1, 20, 20)),
    "nearest upsampling": (Ops(C(1, 2, 3, stride=2), torch.nn.Upsample(scale_factor=2)), (1, 30, 30)),
    "bilinear upsampling": (Ops(C(1, 2, 3, stride=2), torch.nn.Upsample(scale_factor=2, mode="bilinear")), (1, 30, 30)),
    "add": (Branches(torch.add), (1, 30, 30)),
    "concatenation": (Branches(lambda a, b: torch.cat([a, b], 1)), (1, 30, 30)),
    "global average pool": (Ops(C(1, 2, 3), torch.nn.AdaptiveAvgPool2d(1)), (1, 20, 20)),
    "mean over H and W": (Ops(C(1, 2, 3), after=lambda x: x.mean((2, 3))), (1, 20, 20)),
    "mean over H": (Ops(C(1, 2, 3), after=lambda x: x.mean(2)), (1, 20, 20)),
    "max over W": (Ops(C(1, 2, 3), after=lambda x: x.amax(-1)), (1, 20, 20)),
    "flatten, linear": (Ops(C(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 18 * 18, 3)), (1, 20, 20)),
    "LSTM": (Recurrent(torch.nn.LSTM), (2, 30)),
    "GRU": (Recurrent(torch.nn.GRU), (2, 30)),
}


@pytest.mark.parametrize("case", FIELD_CASES)
def test_receptive_field_of_every_operation_kind_matches_the_gradients(case):
    model, size = FIELD_CASES[case]
    torch.manual_seed(0)
    for p in model.parameters():  # no weight exactly zero, nothing cancels
        torch.nn.init.uniform_(p, 0.1, 1.0)
    assert analyze(model, size).layers[-1].receptive_field == measured_field(model, size)


def test_receptive_fields_the_lectures_would_get_wrong():
    """torchvision's VGG-16 on 32x32: adaptive pooling up to 7x7 keeps the field (it shrank to 20);
    a stride-2 convolution then 2x bilinear upsampling sees 5 pixels 1 apart (it said 3 and 2)."""
    rows = {r.name: r for r in analyze(torchvision.models.vgg16(), (3, 32, 32)).layers}
    assert rows["features.30"].receptive_field == rows["avgpool"].receptive_field == (212, 212)
    up = Ops(C(1, 2, 3, stride=2), torch.nn.Upsample(scale_factor=2, mode="bilinear"))
    assert analyze(up, (1, 32, 32)).layers[-1].receptive_field == (5, 5)
    assert analyze(up, (1, 32, 32)).layers[-1].jump == (1.0, 1.0)
    mean_h = analyze(Ops(C(1, 2, 3), after=lambda x: x.mean(2)), (1, 20, 20))
    assert mean_h.layers[-1].receptive_field == (None, 3) and "all" in mean_h.table()


def test_by_name_a_model_is_built_once_on_the_meta_device():
    from cnnlab.registry import meta_model

    assert meta_model("resnet50") is meta_model("resnet50")  # built once
    assert meta_model("resnet50", num_classes=10) is not meta_model("resnet50", num_classes=10)
    assert all(p.is_meta for p in meta_model("resnet50").parameters())
    by_name, instance = analyze("googlenet", mode="train"), analyze(cnnlab.create_model("googlenet"), mode="train")
    assert by_name.totals == instance.totals and [r.name for r in by_name.layers] == [r.name for r in instance.layers]
    assert meta_model("googlenet").training  # as built: analyze's switch to train or eval mode is undone
