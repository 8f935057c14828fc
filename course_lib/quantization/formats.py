"""Number formats bit by bit: fp32, fp16, bf16 and the two FP8s.

Every value a float stores is (-1)^sign * 2^(exponent - bias) * 1.mantissa
(or 0.mantissa * 2^(1 - bias) for subnormals). ``float_bits`` reads the true bits torch
stores; ``decode_bits`` and ``format_table`` compute the same facts from the layout alone,
so the two can check each other and ``torch.finfo``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FloatFormat:
    """Bit layout of a binary floating-point format."""

    name: str  # short name used in tables, e.g. 'fp16'
    dtype: torch.dtype  # the torch dtype that stores it
    exponent_bits: int  # width of the biased exponent field
    mantissa_bits: int  # stored fraction bits (the leading 1 is implicit)
    has_inf: bool = True  # IEEE-like: the all-ones exponent means inf/NaN; 'fn' FP8 formats have no inf

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def total_bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def max(self) -> float:
        if self.has_inf:  # the all-ones exponent is reserved, the largest normal uses the one below
            return 2.0 ** (2**self.exponent_bits - 2 - self.bias) * (2 - 2.0**-self.mantissa_bits)
        # E4M3fn: the all-ones exponent holds numbers too; only mantissa all-ones there is NaN
        return 2.0 ** (2**self.exponent_bits - 1 - self.bias) * (2 - 2.0 ** (1 - self.mantissa_bits))

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def eps(self) -> float:
        """Gap between 1.0 and the next representable number."""
        return 2.0**-self.mantissa_bits


FORMATS: dict[str, FloatFormat] = {
    "fp32": FloatFormat("fp32", torch.float32, 8, 23),
    "fp16": FloatFormat("fp16", torch.float16, 5, 10),
    "bf16": FloatFormat("bf16", torch.bfloat16, 8, 7),
}
if hasattr(torch, "float8_e4m3fn"):
    FORMATS["fp8_e4m3"] = FloatFormat("fp8_e4m3", torch.float8_e4m3fn, 4, 3, has_inf=False)
if hasattr(torch, "float8_e5m2"):
    FORMATS["fp8_e5m2"] = FloatFormat("fp8_e5m2", torch.float8_e5m2, 5, 2)

_ALIASES = {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
            "float8_e4m3fn": "fp8_e4m3", "e4m3": "fp8_e4m3", "float8_e5m2": "fp8_e5m2", "e5m2": "fp8_e5m2"}
_INT_VIEW = {32: torch.int32, 16: torch.int16, 8: torch.uint8}


def get_format(dtype: str | torch.dtype) -> FloatFormat:
    """The FloatFormat for a name ('fp16', 'bfloat16', ...) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        for fmt in FORMATS.values():
            if fmt.dtype == dtype:
                return fmt
        raise ValueError(f"{dtype} is not a float format this module knows; use one of {[f.dtype for f in FORMATS.values()]}.")
    key = _ALIASES.get(str(dtype).lower().removeprefix("torch."), str(dtype).lower())
    if key not in FORMATS:
        raise ValueError(f"Unknown float format {dtype!r}; use one of {sorted(FORMATS)} or a torch dtype.")
    return FORMATS[key]


def _bits_as_int(value: float, fmt: FloatFormat) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"value must be a Python int or float, got {type(value).__name__}.")
    stored = torch.tensor(float(value), dtype=torch.float64).to(fmt.dtype)  # round-to-nearest-even
    return int(stored.view(_INT_VIEW[fmt.total_bits]).item()) & ((1 << fmt.total_bits) - 1)


def float_bits(value: float, dtype: str | torch.dtype = "fp32") -> tuple[str, str, str]:
    """(sign, exponent, mantissa) bit strings of ``value`` as ``dtype`` stores it."""
    fmt = get_format(dtype)
    pattern = format(_bits_as_int(value, fmt), f"0{fmt.total_bits}b")
    return pattern[0], pattern[1 : 1 + fmt.exponent_bits], pattern[1 + fmt.exponent_bits :]


def decode_bits(sign: str, exponent: str, mantissa: str, dtype: str | torch.dtype = "fp32") -> float:
    """The number a bit pattern means, from the format's layout alone (no torch cast)."""
    fmt = get_format(dtype)
    if (len(sign), len(exponent), len(mantissa)) != (1, fmt.exponent_bits, fmt.mantissa_bits) or set(
        sign + exponent + mantissa
    ) - {"0", "1"}:
        raise ValueError(f"{fmt.name} needs 1/{fmt.exponent_bits}/{fmt.mantissa_bits} bits of '0'/'1'; got "
                         f"{len(sign)}/{len(exponent)}/{len(mantissa)}.")
    s = -1.0 if sign == "1" else 1.0
    e, m = int(exponent, 2), int(mantissa, 2)
    all_ones = 2**fmt.exponent_bits - 1
    if e == all_ones and fmt.has_inf:
        return s * math.inf if m == 0 else math.nan
    if e == all_ones and m == 2**fmt.mantissa_bits - 1:  # E4M3fn's only NaN
        return math.nan
    if e == 0:  # subnormal: no implicit leading 1
        return s * m * 2.0 ** (1 - fmt.bias - fmt.mantissa_bits)
    return s * (1 + m / 2**fmt.mantissa_bits) * 2.0 ** (e - fmt.bias)


def stored_value(value: float, dtype: str | torch.dtype) -> float:
    """The number ``dtype`` actually keeps for ``value``."""
    fmt = get_format(dtype)
    return torch.tensor(float(value), dtype=torch.float64).to(fmt.dtype).double().item()


def format_table(names=None):
    """One row per format: bits, bias, max, smallest normal/subnormal, eps (from the layout)."""
    import pandas as pd

    rows = []
    for fmt in (get_format(n) for n in (names or FORMATS)):
        rows.append({"format": fmt.name, "bits": fmt.total_bits, "sign/exp/mantissa": f"1/{fmt.exponent_bits}/{fmt.mantissa_bits}",
                     "bias": fmt.bias, "max": fmt.max, "smallest_normal": fmt.smallest_normal,
                     "smallest_subnormal": fmt.smallest_subnormal, "eps": fmt.eps})
    return pd.DataFrame(rows)


def value_table(value: float, names=None):
    """How each format stores ``value``: bits, stored value, absolute and relative error."""
    import pandas as pd

    rows = []
    for fmt in (get_format(n) for n in (names or FORMATS)):
        s, e, m = float_bits(value, fmt.dtype)
        stored = stored_value(value, fmt.dtype)
        rows.append({"format": fmt.name, "sign": s, "exponent": e, "mantissa": m, "stored": stored,
                     "abs_error": stored - value, "rel_error": (stored - value) / value if value else 0.0})
    return pd.DataFrame(rows)
