"""cnnlab: the landmark convolutional networks and the key ideas of deep learning.

`import cnnlab` loads the model zoo and the public API below; the trainer, the datasets and
the plots load when first used (`cnnlab.train`, `cnnlab.data`, ... import on first access).
"""

__version__ = "0.1.0"

import importlib

from . import models  # noqa: F401  (registers the zoo)
from .analysis import analyze
from .factory import create_model, load_model
from .registry import get_model_info, list_models

__all__ = ["create_model", "list_models", "get_model_info", "analyze", "load_model", "__version__"]

_SUBMODULES = {
    "analysis",
    "checkpoint",
    "data",
    "device",
    "errors",
    "evaluation",
    "experiments",
    "export",
    "factory",
    "files",
    "models",
    "registry",
    "runs",
    "style",
    "train",
    "transfer",
    "weights",
}


def __getattr__(name: str):
    """`cnnlab.weights.pretrained(...)` after `import cnnlab`: a submodule imports when first named."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
