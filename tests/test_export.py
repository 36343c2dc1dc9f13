"""ONNX (run by onnxruntime) and TorchScript exports give PyTorch's outputs, for any batch size."""

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import DATA

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.export import export, run_exported
from cnnlab.train import recipe, train


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("lenet5", "onnx"),  # trainable subsampling, partial C3, RBF outputs
        ("alexnet", "onnx"),  # two towers (groups=2) and LRN
        ("googlenet", "onnx"),  # inception modules, LRN, auxiliary heads left out in eval mode
        ("resnet20", "onnx"),  # option-A shortcuts (strided slicing and zero padding)
        ("resnet18", "onnx"),
        ("lenet5", "torchscript"),
        ("resnet20", "torchscript"),
    ],
)
def test_exports_match_pytorch_at_any_batch_size(name, fmt, tmp_path):
    from cnnlab.export import model_and_config

    out = tmp_path / f"{name}.{fmt}"
    torch.manual_seed(0)
    r = export(name, fmt, out)  # checked on a batch of 2 after writing
    assert r["max_abs_diff"] < 1e-4 and out.stat().st_size == r["bytes"]
    torch.manual_seed(0)
    model, cfg = model_and_config(name)  # the same weights again
    x = torch.randn(3, *cfg["input_size"])  # another batch size
    with torch.no_grad():
        want = model(x).numpy()
    if fmt == "onnx":  # a named, free batch dimension
        assert onnx.load(out).graph.input[0].type.tensor_type.shape.dim[0].dim_param
    got = run_exported(out, fmt, x.numpy())
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4 * max(1, np.abs(want).max())


def test_exporting_a_trained_run_keeps_its_preprocessing(tmp_path, capsys):
    run = tmp_path / "run"
    train(recipe("lenet5_modern", "mnist", data_dir=str(DATA), out=str(run), max_steps=5), log=lambda line: None)
    assert main(["export", str(run), "-o", str(tmp_path / "m.onnx")]) == 0
    assert "outputs match PyTorch within" in capsys.readouterr().out
    meta = {p.key: json.loads(p.value) for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert meta["model"] == "lenet5_modern" and meta["mean"] == [0.1307] and meta["classes"][0] == "0"
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = cnnlab.load_model(run)(torch.from_numpy(x)).numpy()
    assert np.abs(run_exported(tmp_path / "m.onnx", "onnx", x) - want).max() < 1e-4
    with pytest.raises(CnnlabError, match="format must be one of onnx, torchscript"):
        export(str(run), "tflite", tmp_path / "m.tflite")
    assert main(["export", "lenet5", "-o", str(tmp_path / "missing" / "x.onnx")]) == 2
    assert "no such directory" in capsys.readouterr().err and not (tmp_path / "missing").exists()
