"""The model zoo: importing a family module registers its builders."""

from . import alexnet, cnn4, fcn, googlenet, lenet, mlp, nin, probes, resnet, vgg  # noqa: F401  (registers)
from .googlenet import GoogLeNetOutputs, InceptionModule

__all__ = ["InceptionModule", "GoogLeNetOutputs"]
