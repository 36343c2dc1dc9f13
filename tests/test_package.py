"""The package as a whole: `import cnnlab` is light, and the rest of it loads when first named."""

import json
import subprocess
import sys

import pytest

import cnnlab


def loaded_by(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out))


def test_import_cnnlab_loads_only_the_public_api():
    modules = loaded_by("import cnnlab")
    ours = {m for m in modules if m.startswith("cnnlab")}
    assert {"cnnlab.registry", "cnnlab.factory", "cnnlab.analysis", "cnnlab.models.resnet"} <= ours
    assert not {
        m
        for m in ours
        if m.startswith(("cnnlab.train", "cnnlab.data", "cnnlab.evaluation", "cnnlab.cli", "cnnlab.experiments"))
    }, ours
    assert not {m for m in modules if m.split(".")[0] in ("matplotlib", "PIL", "sklearn", "onnx", "tensorboard")}


def test_submodules_load_when_first_named():
    modules = loaded_by("import cnnlab; cnnlab.weights.pretrained")
    assert "cnnlab.weights" in modules and "cnnlab.train" not in modules
    assert callable(cnnlab.train.train) and cnnlab.train.TrainConfig(model="mlp").epochs == 5
    with pytest.raises(AttributeError, match="no attribute 'trainer'"):
        cnnlab.trainer  # noqa: B018
