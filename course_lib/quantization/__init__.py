"""Number formats and int8 quantization (lab 05).

- ``formats``: float bit layouts (fp32, fp16, bf16, FP8), the bits torch stores, what a pattern means;
- ``int8``: absmax and zero-point int8 of tensors, weight-only int8 ``nn.Linear`` layers, torch's dynamic int8;
- ``measure``: what int8 costs a real model (size, output change, time, perplexity of a small byte-level
  decoder) and quantization-aware training (fake quantization with a straight-through gradient).

The names of ``formats`` and ``int8`` are available here directly (``course_lib.quantization.quantize_absmax``).
"""

from . import formats, int8, measure
from .formats import FORMATS, FloatFormat, decode_bits, float_bits, format_table, get_format, stored_value, value_table
from .int8 import (
    QMAX,
    Int8Linear,
    dequantize_absmax,
    dequantize_zeropoint,
    quantization_error,
    quantize_absmax,
    quantize_linear_weights,
    quantize_zeropoint,
    serialized_bytes,
    torch_dynamic_int8,
)

__all__ = [
    "FORMATS", "FloatFormat", "decode_bits", "float_bits", "format_table", "get_format", "stored_value", "value_table",
    "QMAX", "Int8Linear", "dequantize_absmax", "dequantize_zeropoint", "quantization_error", "quantize_absmax",
    "quantize_linear_weights", "quantize_zeropoint", "serialized_bytes", "torch_dynamic_int8",
    "formats", "int8", "measure",
]
