"""The training step captured as one CUDA graph (--cuda-graph). A CUDA graph needs a GPU; here its
capture is replaced by a replay that calls the captured step again, so the rest — the step's
fixed tensors, the learning rates on the device, the warm-up, the eager short batch, the loop
around it — runs on the CPU and must train exactly as the eager step does. tests/test_gpu.py
compares the real graph with the eager step on a GPU."""

import pytest
import torch
from conftest import DATA, killed_inside_epoch

from cnnlab.errors import CnnlabError
from cnnlab.train import graphed, recipe, train
from cnnlab.train.graphed import WARMUP, GraphedStep

# 200 MNIST images in batches of 32: 6 full batches and a short one of 8 per epoch
COMMON = dict(
    epochs=2,
    train_per_class=20,
    test_per_class=5,
    batch_size=32,
    augment=("crop", "flip"),
    data_dir=str(DATA),
    device="auto",
)


@pytest.fixture
def replayed_on_cpu(monkeypatch):
    """The capture on the CPU: nothing runs while capturing; a replay calls the step."""
    counts = {"captures": 0, "replays": 0}

    def capture(step, stream, generator):
        counts["captures"] += 1

        def replay():
            counts["replays"] += 1
            step()

        return replay

    monkeypatch.setitem(graphed.CAPTURE, "cpu", capture)
    return counts


def runs(model: str, **settings) -> tuple[dict, dict]:
    eager = train(recipe(model, "mnist", **COMMON, **settings), log=lambda line: None)
    graph = train(recipe(model, "mnist", cuda_graph=True, **COMMON, **settings), log=lambda line: None)
    return eager, graph


def test_the_captured_step_trains_bit_for_bit_as_the_eager_step(replayed_on_cpu):
    # SGD with momentum and weight decay at a rate a float32 holds exactly (the graph's rate is a
    # float32 tensor on the device), batch norm and dropout: the same weights to the last bit
    eager, graph = runs("cnn4", optimizer="sgd", lr=0.125, momentum=0.9, weight_decay=5e-4, schedule="none")
    full_steps = 2 * 6
    assert replayed_on_cpu == {"captures": 1, "replays": full_steps - WARMUP}
    for (name, a), b in zip(eager["model"].state_dict().items(), graph["model"].state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["train_loss"] for r in graph["history"]] == [r["train_loss"] for r in eager["history"]]
    assert [r["train_top1"] for r in graph["history"]] == [r["train_top1"] for r in eager["history"]]
    assert graph["test"] == eager["test"]


def test_the_schedule_reaches_the_captured_step(replayed_on_cpu):
    # AdamW, its rate cut x0.1 at 50 % and 75 % of the steps: written into the device tensor before
    # each replay (a rate fixed at the capture would leave the weights far from the eager run's);
    # the rates rounded to float32 are all that differs
    eager, graph = runs("lenet5_modern", optimizer="adamw", lr=3e-3, schedule="multistep", weight_decay=0.05)
    assert replayed_on_cpu["replays"] == 2 * 6 - WARMUP
    for (name, a), b in zip(eager["model"].state_dict().items(), graph["model"].state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-6), name
    assert graph["history"][-1]["lr"] == eager["history"][-1]["lr"] == pytest.approx(3e-3 * 0.01)
    assert graph["history"][-1]["train_loss"] == pytest.approx(eager["history"][-1]["train_loss"], rel=1e-5)


def test_a_captured_run_killed_inside_an_epoch_resumes_to_the_eager_runs_weights(replayed_on_cpu, tmp_path):
    # killed at its checkpoint after step 2 of epoch 2 and resumed: the new process warms up and
    # captures anew, and ends on the weights of an uninterrupted eager run
    settings = dict(optimizer="sgd", lr=0.125, schedule="none", checkpoint_steps=1, **COMMON)
    whole = train(recipe("cnn4", "mnist", out=str(tmp_path / "whole"), **settings), log=lambda line: None)

    run = str(tmp_path / "run")
    with killed_inside_epoch(2, 2):
        train(recipe("cnn4", "mnist", out=run, cuda_graph=True, **settings), log=lambda line: None)
    resumed = train(recipe("cnn4", "mnist", out=run, resume=True, cuda_graph=True, **settings), log=lambda line: None)
    assert replayed_on_cpu == {"captures": 2, "replays": (8 - WARMUP) + (4 - WARMUP)}
    for (name, a), b in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b), name


def test_the_step_is_captured_on_a_gpu_only():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(CnnlabError, match="captures the training step on a CUDA GPU; this run is on cpu"):
        GraphedStep(lambda indices: None, opt, torch.Generator(), 8, torch.device("cpu"))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(device="cpu"), "it does nothing on the CPU"),
        (dict(compile="reduce-overhead"), "makes CUDA graphs of its own"),
        (dict(optimizer="rmsprop", schedule="none"), "rmsprop reads its rate on the host"),
        (dict(mixup=0.2, schedule="none"), "mixup draws its weight on the host"),
        (dict(schedule="onecycle"), "the onecycle schedule changes the momentum every step"),
        (dict(dataset="folder:/tmp", schedule="none"), "not from an image folder"),
    ],
)
def test_what_a_captured_step_cannot_do_is_refused(change, message):
    with pytest.raises(CnnlabError, match=message):
        train(recipe("mlp", **{"dataset": "mnist", **change}, cuda_graph=True))
