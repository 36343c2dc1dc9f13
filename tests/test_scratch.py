"""Backprop by hand (cnnlab.scratch): every NumPy layer's forward and backward pass against
PyTorch's autograd in float64 (relative difference below 1e-10) and against finite differences
(below 1e-7); whole zoo models to NumPy and back; the optimisers; the NumPy engine of `cnnlab
train`, the same run as the PyTorch engine's up to float32 rounding."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DATA
from torch import nn

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.evaluation.runs import evaluate_runs
from cnnlab.models.lenet import ScaledTanh, Subsampling
from cnnlab.models.resnet import BasicBlock, ShortcutA
from cnnlab.scratch import from_torch, to_torch
from cnnlab.scratch.activations import Dropout
from cnnlab.scratch.check import relative, walk
from cnnlab.scratch.convert import Network, _Arrays, module_layer
from cnnlab.scratch.layers import Layer
from cnnlab.scratch.losses import mean_squared_error, softmax_cross_entropy
from cnnlab.scratch.optim import adam_step, sgd_step
from cnnlab.train import recipe, train

EXACT, FINITE = 1e-10, 1e-7
rng = np.random.default_rng(0)


def as_numpy(module: nn.Module) -> Layer:
    return module_layer(module.double(), _Arrays(False, np.float64))


def autograd(module: nn.Module, x: np.ndarray, r: np.ndarray, train: bool = True):
    """y, dL/dx and dL/dparams of L = sum(y * r) by autograd."""
    module.train(train)
    module.zero_grad(set_to_none=True)
    xt = torch.tensor(x, requires_grad=True)
    y = module(xt)
    (y * torch.tensor(r)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), {n: p.grad.numpy() for n, p in module.named_parameters()}


def finite(layer: Layer, x: np.ndarray, r: np.ndarray, dx: np.ndarray, train: bool = True, h=1e-6) -> float:
    """The largest difference between the layer's gradients and central differences of
    L = sum(y * r), at 8 coordinates of the input and of each parameter, on the gradient's scale."""
    worst = 0.0
    for array, grad in [(x, dx)] + [(layer.params[k], layer.grads[k]) for k in layer.params]:
        flat, grad = array.reshape(-1), grad.reshape(-1).copy()
        for j in rng.choice(flat.size, size=min(8, flat.size), replace=False):
            keep = flat[j]
            flat[j] = keep + h
            up = (layer.forward(x, train) * r).sum()
            flat[j] = keep - h
            down = (layer.forward(x, train) * r).sum()
            flat[j] = keep
            worst = max(worst, abs((up - down) / (2 * h) - grad[j]) / max(np.abs(grad).max(), 1e-12))
    return worst


def check(module: nn.Module, x: np.ndarray, train: bool = True, smooth: bool = True):
    """The NumPy layer of `module` against autograd, and (for smooth layers) finite differences."""
    module = module.double()
    layer = as_numpy(module)
    y = layer.forward(x.copy(), train)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)
    ty, tdx, tgrads = autograd(module, x, r, train)
    assert relative(y, ty) < EXACT and relative(dx, tdx) < EXACT
    grads = {n[2:]: part.grads[k] for n, part, k in Network([("m", layer)]).parameters()}
    assert set(grads) == set(tgrads)
    for name, grad in tgrads.items():
        assert relative(grads[name], grad) < EXACT, name
    if smooth:
        assert finite(layer, x, r, dx, train) < FINITE


CONVS = [  # in, out, kernel, stride, padding, dilation, groups, size
    (1, 6, 5, 1, 0, 1, 1, 12),
    (3, 8, 3, 1, 1, 1, 1, 9),
    (4, 6, 3, 2, 1, 1, 2, 11),
    (6, 6, 3, 1, 2, 2, 3, 10),
    (3, 5, 7, 3, 3, 1, 1, 15),
    (2, 4, 1, 2, 0, 1, 1, 8),
    (4, 4, 3, 1, 1, 1, 4, 7),  # depthwise
]


@pytest.mark.parametrize("c, f, k, s, p, d, g, size", CONVS)
def test_convolution_is_exact(c, f, k, s, p, d, g, size):
    conv = nn.Conv2d(c, f, k, stride=s, padding=p, dilation=d, groups=g)
    check(conv, rng.standard_normal((2, c, size, size + 1)))


def test_convolution_without_bias_and_its_gradient_is_a_transposed_convolution():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=False).double()
    check(conv, rng.standard_normal((2, 3, 8, 8)))
    layer = as_numpy(conv)  # dX = col2im(dY W) is conv_transpose2d(dY, W): the lectures' claim
    layer.forward(rng.standard_normal((2, 3, 8, 8)))
    dy = rng.standard_normal((2, 5, 4, 4))
    transposed = F.conv_transpose2d(torch.tensor(dy), conv.weight.detach(), stride=2, padding=1, output_padding=1)
    assert relative(layer.backward(dy), transposed.numpy()) < EXACT


@pytest.mark.parametrize(
    "module",
    [
        nn.MaxPool2d(2),
        nn.MaxPool2d(3, 2, 1),
        nn.MaxPool2d(3, 1),
        nn.AvgPool2d(2),
        nn.AvgPool2d(3, 2, 1),
        nn.AdaptiveAvgPool2d(1),
    ],
    ids=["max2", "max3s2p1", "max3s1", "avg2", "avg3s2p1", "global"],
)
def test_pooling_is_exact(module):
    check(module, rng.standard_normal((2, 3, 9, 8)), smooth=not isinstance(module, nn.MaxPool2d))


@pytest.mark.parametrize(
    "module",
    [nn.ReLU(), nn.LeakyReLU(0.1), nn.Tanh(), nn.Sigmoid(), ScaledTanh(), nn.Flatten()],
    ids=["relu", "leaky", "tanh", "sigmoid", "lecun_tanh", "flatten"],
)
def test_activations_are_exact(module):
    check(module, rng.standard_normal((3, 4, 5, 5)))


def test_linear_subsampling_and_batch_norm_are_exact():
    check(nn.Linear(7, 5), rng.standard_normal((4, 7)))
    sub = Subsampling(3)
    nn.init.normal_(sub.weight)
    check(sub, rng.standard_normal((2, 3, 6, 6)))
    for bn, shape in ((nn.BatchNorm2d(4), (5, 4, 3, 3)), (nn.BatchNorm1d(6), (8, 6))):
        nn.init.normal_(bn.weight), nn.init.normal_(bn.bias)
        x = 2 + 3 * rng.standard_normal(shape)
        check(bn, x, train=True)
        layer = as_numpy(bn)
        layer.forward(x, True)  # the running statistics move as PyTorch's do (unbiased variance)
        bn.train()(torch.tensor(x))
        assert relative(layer.buffers["running_var"], bn.running_var.numpy()) < EXACT
        check(bn, x, train=False)


def test_dropout_scales_what_it_keeps_and_routes_the_gradient_through_the_mask():
    layer = Dropout(0.25, draw=np.random.default_rng(1).random)
    x = rng.standard_normal((1000, 10))
    y = layer.forward(x, True)
    mask = (np.random.default_rng(1).random(x.shape) >= 0.25) / 0.75
    assert np.array_equal(y, x * mask) and 0.72 < (y != 0).mean() < 0.78
    dy = rng.standard_normal(x.shape)
    assert np.array_equal(layer.backward(dy), dy * mask)
    assert layer.forward(x, False) is x


def test_residual_blocks_are_exact_and_the_skip_carries_the_gradient():
    projection = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
    for block in (
        BasicBlock(8, 8),
        BasicBlock(8, 16, 2, downsample=ShortcutA(16, 2)),
        BasicBlock(8, 16, 2, downsample=projection),
        BasicBlock(8, 8, shortcut=False),
    ):
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight)
        check(block, rng.standard_normal((2, 8, 6, 6)), smooth=False)
    block = as_numpy(BasicBlock(4, 4).double())
    block.body.layers[-1][1].params["weight"][:] = 0  # F(x) = 0: the gradient reaches x through the skip alone
    x = rng.standard_normal((2, 4, 5, 5))
    block.forward(x)
    dy = rng.standard_normal((2, 4, 5, 5))
    assert np.array_equal(block.backward(dy), dy * (x > 0))


def test_losses_give_p_minus_y():
    logits, labels = rng.standard_normal((6, 10)), rng.integers(0, 10, 6)
    for smoothing in (0.0, 0.1):
        z = torch.tensor(logits, requires_grad=True)
        F.cross_entropy(z, torch.tensor(labels), label_smoothing=smoothing).backward()
        loss, grad = softmax_cross_entropy(logits, labels, smoothing)
        assert loss == pytest.approx(F.cross_entropy(z, torch.tensor(labels), label_smoothing=smoothing).item())
        assert relative(grad, z.grad.numpy()) < EXACT
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert relative(softmax_cross_entropy(logits, labels)[1], (p - np.eye(10)[labels]) / 6) < EXACT
    pred, target = rng.standard_normal((5, 1)), rng.standard_normal(5)
    t = torch.tensor(pred, requires_grad=True)
    F.mse_loss(t.squeeze(1), torch.tensor(target)).backward()
    loss, grad = mean_squared_error(pred, target)
    assert relative(grad, t.grad.numpy()) < EXACT


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mlp", {"dropout": 0.2}),
        ("lenet5_modern", {}),
        ("cnn4", {"batchnorm": True, "hidden": 16, "activation": "tanh"}),
        ("resnet20", {"width": 0.25}),
        ("plain20", {"width": 0.25}),
    ],
)
def test_zoo_models_to_numpy_and_back(name, kwargs):
    model = cnnlab.create_model(name, **kwargs).double().eval()
    size = cnnlab.get_model_info(name).input_size
    x = rng.standard_normal((3, *size))
    net = from_torch(model)
    assert relative(net.forward(x, False), model(torch.tensor(x)).detach().numpy()) < EXACT
    w = walk(model, size, batch=3, check=True)  # every gradient, against autograd and finite differences
    assert w.ok and max(w.autograd.values()) < EXACT and max(w.finite.values()) < FINITE
    for _, layer, key in net.parameters():  # a change made in NumPy goes back into the model
        layer.params[key] += 0.01
    to_torch(net, model)
    assert relative(net.forward(x, False), model(torch.tensor(x)).detach().numpy()) < EXACT


def test_what_numpy_cannot_run_is_named():
    with pytest.raises(CnnlabError, match="no NumPy layer for PartialConv2d"):
        from_torch(cnnlab.create_model("lenet5"))
    with pytest.raises(CnnlabError, match="no NumPy layer for MaxPool2d"):
        from_torch(cnnlab.create_model("googlenet"))  # ceil_mode pooling

    class TwoPaths(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(CnnlabError, match="TwoPaths is not a chain of layers at b"):
        from_torch(TwoPaths())


def test_optimisers_step_as_pytorchs():
    w0 = rng.standard_normal(20)
    grads = [rng.standard_normal(20) for _ in range(5)]
    for kwargs in ({"momentum": 0.0}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}):
        p = torch.tensor(w0, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1, **kwargs)
        w, buf = w0.copy(), np.zeros(20)
        for i, g in enumerate(grads):
            p.grad = torch.tensor(g)
            opt.step()
            sgd_step(w, g, buf, 0.1, first=i == 0, **kwargs)
        assert relative(w, p.detach().numpy()) < 1e-14
    for decoupled, cls in ((False, torch.optim.Adam), (True, torch.optim.AdamW)):
        p = torch.tensor(w0, requires_grad=True)
        opt = cls([p], lr=0.01, weight_decay=0.1)
        w, m, v = w0.copy(), np.zeros(20), np.zeros(20)
        for step, g in enumerate(grads, 1):
            p.grad = torch.tensor(g)
            opt.step()
            adam_step(w, g, m, v, step, 0.01, weight_decay=0.1, decoupled=decoupled)
        assert relative(w, p.detach().numpy()) < 1e-14


SMALL = dict(data_dir=str(DATA), train_per_class=30, test_per_class=20, batch_size=50, epochs=2)


def test_the_numpy_engine_is_the_pytorch_run_up_to_rounding(tmp_path):
    runs = {}
    for engine in ("torch", "numpy"):
        cfg = recipe("lenet5_modern", "mnist", engine=engine, out=str(tmp_path / engine), **SMALL)
        runs[engine] = train(cfg, log=lambda line: None)
    a, b = runs["torch"]["model"].state_dict(), runs["numpy"]["model"].state_dict()
    assert max(relative(b[k].numpy(), a[k].numpy()) for k in a) < 1e-3  # 12 AdamW steps, float32 both ways
    assert abs(runs["numpy"]["history"][-1]["train_loss"] - runs["torch"]["history"][-1]["train_loss"]) < 1e-3
    # its weights load as any run's, and PyTorch scores them as the NumPy forward pass did
    last = json.loads((tmp_path / "numpy" / "metrics.jsonl").read_text().splitlines()[-1])
    evaluated = evaluate_runs([tmp_path / "numpy"], data_dir=str(DATA), per_class=20)
    assert abs(evaluated["top1"] - last["test_top1"]) <= 1 / 200 and last["test_top1"] > 0.3  # chance: 0.1
    assert json.loads((tmp_path / "numpy" / "config.json").read_text())["engine"] == "numpy"


def test_the_numpy_engine_resumes_to_the_same_weights(tmp_path):
    common = dict(engine="numpy", optimizer="sgd", lr=0.05, momentum=0.9, dropout=0.2, **SMALL)
    straight = train(recipe("mlp", "mnist", out=str(tmp_path / "a"), **common), log=lambda line: None)["model"]

    class Stop(Exception):
        pass

    def stop(line):
        if line.startswith("epoch 1/2"):
            raise Stop

    with pytest.raises(Stop):
        train(recipe("mlp", "mnist", out=str(tmp_path / "b"), **common), log=stop)
    resumed = train(recipe("mlp", "mnist", out=str(tmp_path / "b"), resume=True, **common), log=lambda line: None)
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed["model"].state_dict()[k]), k


def test_backprop_command(capsys):
    assert main(["backprop", "lenet5_modern", "--check"]) == 0
    out = capsys.readouterr().out
    assert "dX = col2im(dY · W)" in out and "arg-max" in out and "dZ = (p − y) / N" in out and ": ok" in out
    assert "4x6x28x28" in out and "4x16x5x5" in out
    assert main(["backprop", "resnet20", "--batch", "2"]) == 0
    assert "dX: F " in capsys.readouterr().out  # the gradient through each residual block's two paths
    assert main(["backprop", "lenet5"]) == 2
    assert "no NumPy layer for PartialConv2d" in capsys.readouterr().err


def test_the_engine_keeps_each_layer_in_its_modules_mode():
    """A frozen batch norm (eval inside a training model, as transfer learning freezes it) uses
    and keeps its running statistics in NumPy too; the others use the batch's and update theirs."""
    import copy

    from cnnlab.scratch.engine import NumpyModel

    model = cnnlab.create_model("cnn4", batchnorm=True).train()
    frozen = model.features[1]
    with torch.no_grad():
        frozen.running_mean.uniform_(-1, 1), frozen.running_var.uniform_(0.5, 2)
    frozen.eval()
    reference = copy.deepcopy(model)
    x = torch.randn(4, 3, 32, 32)
    out = NumpyModel(model)(x)
    assert torch.allclose(out, reference(x), atol=1e-4)
    for a, b in zip(model.buffers(), reference.buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)  # the same statistics, frozen or moved
    assert not torch.equal(model.features[5].running_mean, torch.zeros(32))  # a training BN moved
