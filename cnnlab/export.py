"""Export a zoo model or a trained run to ONNX (checked with onnxruntime) or TorchScript.

The exported network takes what the PyTorch model takes: normalised (N, C, H, W) float input,
N free. An ONNX file carries the run's preprocessing in its metadata (model, mean, std, classes).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import CnnlabError
from .factory import create_model, load_model
from .files import atomic_file, check_output
from .registry import get_model_info
from .runs import read_config

FORMATS = ("onnx", "torchscript")


def model_and_config(source: str, weights: str | None = None) -> tuple[nn.Module, dict]:
    """A run directory / run file (its model and config) or a zoo model name (with `weights`)."""
    if Path(source).exists():
        cfg = read_config(source)
        return load_model(source), {
            "model": cfg["model"],
            "input_size": cfg["input_size"],
            "mean": cfg["mean"],
            "std": cfg["std"],
            "classes": cfg.get("classes", []),
        }
    info = get_model_info(source)  # unknown names: UnknownModelError with the closest names
    model = create_model(source, weights=weights).eval()
    own = getattr(model, "input_size", info.input_size)  # free sizes (None) take the registry's example
    size = [o if o is not None else i for o, i in zip(own, info.input_size)]
    cfg = {"model": source, "input_size": size}
    pretrained = getattr(model, "pretrained", None)
    if pretrained is not None:
        cfg.update(mean=list(pretrained.mean), std=list(pretrained.std), classes=pretrained.categories)
    return model, cfg


def export(
    source: str,
    fmt: str,
    out: str | os.PathLike,
    weights: str | None = None,
    batch: int = 2,
    check: bool = True,
    overwrite: bool = False,
) -> dict:
    """Write `source` (a run or a model name) as `fmt` to `out` (atomically; an existing file only
    with `overwrite`); with `check`, run the exported file on a random batch and compare with
    PyTorch. Returns what was done."""
    if fmt not in FORMATS:
        raise CnnlabError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = check_output(out, overwrite)
    if weights is not None and Path(source).exists():
        raise CnnlabError(f"{source}: a run exports its own weights; --weights is for a model name")
    model, cfg = model_and_config(source, weights)
    model = model.eval().float().cpu()
    x = torch.randn(batch, *cfg["input_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    with atomic_file(out) as tmp:
        if fmt == "onnx":
            _export_onnx(model, x, tmp, cfg)
        else:
            with torch.no_grad(), warnings.catch_warnings():  # TorchScript is deprecated, and input
                warnings.simplefilter("ignore", FutureWarning)  # checks trace as constants: both fine here
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(model, x)
                buffer = io.BytesIO()  # a failing file write inside torch aborts the process: write it here
                torch.jit.save(traced, buffer)
            Path(tmp).write_bytes(buffer.getvalue())
    result = {
        "file": str(out),
        "format": fmt,
        "model": cfg["model"],
        "input_size": cfg["input_size"],
        "bytes": out.stat().st_size,
    }
    if check:
        got = run_exported(out, fmt, x.numpy())
        result["max_abs_diff"] = float(np.abs(got - expected.numpy()).max())
        result["max_abs_output"] = float(expected.abs().max())  # the scale the difference is on
    return result


def _export_onnx(model: nn.Module, x: torch.Tensor, path: str, cfg: dict) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise CnnlabError("ONNX export needs onnx and onnxscript: pip install 'cnnlab[export]'") from None
    batch = torch.export.Dim("batch", min=1)
    try:
        torch.onnx.export(
            model,
            (x,),
            path,
            dynamo=True,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            verbose=False,
            external_data=False,
        )
    except Exception as e:  # noqa: BLE001  (the exporter's own error types)
        raise CnnlabError(
            f"{cfg['model']}: ONNX export failed ({type(e).__name__}: {str(e).strip().splitlines()[0]})"
        ) from None
    proto = onnx.load(path)
    for key, value in cfg.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, path)


def run_exported(path: str | os.PathLike, fmt: str, x: np.ndarray) -> np.ndarray:
    """Outputs of an exported file for input `x`: onnxruntime for ONNX, torch.jit for TorchScript."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise CnnlabError("checking an ONNX file needs onnxruntime: pip install 'cnnlab[export]'") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()
