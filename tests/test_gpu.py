"""CUDA checks: every model runs on the GPU and agrees with the CPU. Deselected by default
(`-m "not gpu"` in pyproject.toml); run with `pytest -m gpu` on a machine with CUDA."""

import pytest
import torch
from conftest import DATA

import cnnlab
from cnnlab.train import graphed, recipe, train

pytestmark = pytest.mark.gpu


def test_cuda_is_available():
    assert torch.cuda.is_available(), "the gpu tests need CUDA"


def calibrate_batch_norm(model, x):
    """Set BN running statistics to those of x: untrained deep nets (ResNet-1202) blow up in
    eval mode with the initial statistics, which would make the comparison meaningless."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        bn.reset_running_stats()
    with torch.no_grad():
        model.train()(x)


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_same_outputs_on_cuda_and_cpu(name):
    # float64 on both sides: float32 rounding differences grow through 100+ layers (plain110
    # differs by 26 % in float32), which would hide a real mismatch behind a loose tolerance
    info = cnnlab.get_model_info(name)
    model = cnnlab.create_model(name).double()
    x = torch.randn(2, *info.input_size, dtype=torch.float64)
    calibrate_batch_norm(model, x)
    model.eval()
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda()).cpu()
    scale = cpu.abs().max().clamp(min=1.0)
    assert ((gpu - cpu).abs().max() / scale).item() < 1e-7  # plain110 amplifies float64 rounding to 2e-9
    model.train()
    out = model(x.cuda())
    sum(o.sum() for o in (out if isinstance(out, tuple) else [out])).backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in model.parameters())


# 300 CIFAR-10 images in batches of 64 on the GPU: four full batches and a short one of 44
TINY_CIFAR = dict(train_per_class=30, test_per_class=10, batch_size=64, data_dir=str(DATA), device="cuda")


def test_cuda_graph_training_matches_eager():
    # the launch-bound CIFAR ResNet through torch.compile's reduce-overhead mode (CUDA graphs);
    # 300 images in batches of 64: the short fifth batch runs eagerly
    common = dict(TINY_CIFAR, epochs=1, schedule="none", amp=False)
    eager = train(recipe("resnet20", "cifar10", **common), log=lambda line: None)
    graphs = train(recipe("resnet20", "cifar10", compile="reduce-overhead", **common), log=lambda line: None)
    for (k, a), b in zip(eager["model"].state_dict().items(), graphs["model"].state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-3), k
    assert graphs["history"][0]["train_loss"] == pytest.approx(eager["history"][0]["train_loss"], rel=1e-3)


@pytest.mark.parametrize(
    "settings, tolerance",
    [
        (dict(amp=False), 1e-3),  # float32, SGD with momentum: the eager numbers up to the rate's float32
        # bf16 and AdamW's capturable step: a last-bit difference may round a bf16 value the other way
        (dict(amp=True, optimizer="adamw", lr=2e-3, weight_decay=0.05), 1e-2),
    ],
)
def test_the_whole_step_as_one_cuda_graph_trains_as_the_eager_step(settings, tolerance, monkeypatch):
    # 300 images in batches of 64: 4 full batches (3 eager warm-up steps, then the graph) and a
    # short one per epoch; crops and flips drawn inside the graph from the run's generator
    common = dict(TINY_CIFAR, epochs=2, schedule="multistep", **settings)
    replays = []
    capture = graphed.CAPTURE["cuda"]

    def counted(step, stream, generator):
        replay = capture(step, stream, generator)
        return lambda: (replays.append(1), replay())

    monkeypatch.setitem(graphed.CAPTURE, "cuda", counted)
    eager = train(recipe("resnet20", "cifar10", **common), log=lambda line: None)
    graph = train(recipe("resnet20", "cifar10", cuda_graph=True, **common), log=lambda line: None)
    assert len(replays) == 2 * 4 - graphed.WARMUP
    for (k, a), b in zip(eager["model"].state_dict().items(), graph["model"].state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=tolerance, atol=tolerance), k
    for e, g in zip(eager["history"], graph["history"]):
        assert g["train_loss"] == pytest.approx(e["train_loss"], rel=tolerance)
        assert g["lr"] == e["lr"]
