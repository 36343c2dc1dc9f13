"""LeNet-5 as published, checked layer by layer against LeCun et al. 1998."""

import torch
from conftest import n_params

import cnnlab
from cnnlab.models.lenet import C3_TABLE, DIGIT_BITMAPS, digit_codes


def test_trainable_parameters_are_exactly_60000():
    model = cnnlab.create_model("lenet5")
    assert n_params(model, trainable_only=True) == 60_000
    per_layer = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children() if name != "act"}
    assert per_layer == {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164, "output": 0}
    assert model.output.codes.shape == (10, 84)  # fixed, not trainable
    assert n_params(cnnlab.create_model("lenet5", head="linear")) == 60_850


def test_c3_connection_table():
    assert sum(map(len, C3_TABLE)) == 60
    assert [len(t) for t in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    # Table I, row of S2 map 0: C3 maps 0, 4, 5, 6, 9, 10, 11, 12, 14, 15
    assert [j for j, t in enumerate(C3_TABLE) if 0 in t] == [0, 4, 5, 6, 9, 10, 11, 12, 14, 15]
    c3 = cnnlab.create_model("lenet5").c3
    full = c3.full_weight()
    connected = full.abs().sum((2, 3)) > 0
    expected = torch.zeros(16, 6, dtype=torch.bool)
    for j, ins in enumerate(C3_TABLE):
        expected[j, list(ins)] = True
    assert torch.equal(connected, expected)
    # an unconnected input map has no effect on the output map
    x = torch.randn(1, 6, 10, 10)
    y = c3(x)
    x2 = x.clone()
    x2[:, 5] += 1.0  # map 5 does not feed C3 map 0 (Table I)
    assert torch.equal(c3(x2)[:, 0], y[:, 0])
    assert not torch.equal(c3(x2)[:, 3], y[:, 3])


def test_subsampling_and_squashing():
    model = cnnlab.create_model("lenet5")
    s2 = model.s2
    with torch.no_grad():
        s2.weight.fill_(0.5)
        s2.bias.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 6, 1, 1)
    out = s2(x)
    assert out.shape == (1, 6, 2, 2)
    assert out[0, 0, 0, 0].item() == (0 + 1 + 4 + 5) * 0.5 + 1.0
    a = torch.tensor([0.0, 1.0, -1.0])
    assert torch.allclose(model.act(a), 1.7159 * torch.tanh(2 * a / 3))
    assert abs(model.act(torch.tensor(1.0)).item() - 1.0) < 1e-3  # f(1) = 1, as the paper chose A and S


def test_shapes_through_the_network():
    model = cnnlab.create_model("lenet5")
    x = torch.randn(2, 1, 32, 32)
    shapes = []
    for name in ("c1", "s2", "c3", "s4", "c5"):
        x = getattr(model, name)(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]


def test_rbf_outputs_are_negated_squared_distances_to_plus_minus_one_codes():
    codes = digit_codes()
    assert set(codes.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(c.tolist()) for c in codes}) == 10
    assert len(DIGIT_BITMAPS.split()) == 12 * 10  # 12 rows of 7 pixels per digit
    model = cnnlab.create_model("lenet5")
    f6 = torch.randn(3, 84)
    expected = -((f6[:, None, :] - codes[None]) ** 2).sum(-1)
    assert torch.allclose(model.output(f6), expected, atol=1e-4)
    # an F6 output equal to a class's code is at distance 0: that class wins
    assert model.output(codes[7:8]).argmax().item() == 7


def test_paper_initialisation_bounds():
    model = cnnlab.create_model("lenet5")
    assert model.c1.weight.abs().max() <= 2.4 / 25
    assert model.c5.weight.abs().max() <= 2.4 / 400
    assert model.f6.weight.abs().max() <= 2.4 / 120
    w = model.c3.weight.abs().amax((1, 2))
    assert (w[:18] <= 2.4 / 75).all() and (w[-6:] <= 2.4 / 150).all()
    assert w[-6:].max() > 2.4 / 300  # not all drawn from the smallest bound


def test_modern_lenet_matches_the_lecture_slides():
    # "Input 32 x 32, output 6 feature maps 28 x 28, (5x5x1+1)*6 = 156 parameters"
    m32 = cnnlab.create_model("lenet5_modern", input_size=32)
    assert m32.conv1(torch.randn(1, 1, 32, 32)).shape == (1, 6, 28, 28)
    assert n_params(m32.conv1) == 156
    m28 = cnnlab.create_model("lenet5_modern")
    assert m28.conv1(torch.randn(1, 1, 28, 28)).shape == (1, 6, 28, 28)  # padding 2
    assert m28.forward_features(torch.randn(1, 1, 28, 28)).shape == (1, 16, 5, 5)
