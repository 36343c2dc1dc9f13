"""cnnlab: the landmark convolutional networks and the key ideas of deep learning."""

__version__ = "0.1.0"

from . import models  # noqa: E402,F401  (registers the zoo)
from .analysis import analyze  # noqa: E402
from .registry import create_model, get_model_info, list_models  # noqa: E402
from .train import load_model  # noqa: E402

__all__ = ["create_model", "list_models", "get_model_info", "analyze", "load_model", "__version__"]
