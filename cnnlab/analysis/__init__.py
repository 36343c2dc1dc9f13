"""The analyser: per-layer output shape, parameters, activation memory, multiply-adds and
receptive field of any nn.Module, the memory of a training step, and the conv arithmetic the
lectures do by hand.

- analyzer.py   analyze() and training_memory(): one forward pass on the meta device
- tracer.py     what each tensor operation costs and how it grows the receptive field
- result.py     Analysis: rows, totals, tables
- arithmetic.py conv_output_size, pool_output_size, conv_transpose_output_size, receptive_field, conv_params
"""

from .analyzer import OPTIMIZER_STATE, analyze, training_memory
from .arithmetic import conv_output_size, conv_params, conv_transpose_output_size, pool_output_size, receptive_field
from .result import UNITS, Analysis, LayerRow, si

__all__ = [
    "OPTIMIZER_STATE",
    "UNITS",
    "Analysis",
    "LayerRow",
    "analyze",
    "conv_output_size",
    "conv_params",
    "conv_transpose_output_size",
    "pool_output_size",
    "receptive_field",
    "si",
    "training_memory",
]
