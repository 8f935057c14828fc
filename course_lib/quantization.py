"""Number formats bit by bit, and int8 quantization of tensors and models.

Float formats: every value a float stores is (-1)^sign * 2^(exponent - bias) * 1.mantissa
(or 0.mantissa * 2^(1 - bias) for subnormals). ``float_bits`` reads the true bits torch
stores; ``decode_bits`` and ``format_table`` compute the same facts from the layout alone,
so the two can check each other and ``torch.finfo``.

Int8: absmax (symmetric) and zero-point (asymmetric) quantization, per tensor or per
channel, as in Dettmers et al. 2022 (LLM.int8(), arXiv 2208.07339), and weight-only int8
versions of a model's ``nn.Linear`` layers.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# --- float formats ------------------------------------------------------------


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


# --- int8 quantization of tensors ----------------------------------------------

QMAX = 127  # absmax uses the symmetric range [-127, 127]


def _check_float_tensor(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Expected a torch.Tensor, got {type(x).__name__}; wrap it with torch.tensor(...).")
    if not x.is_floating_point():
        raise TypeError(f"Expected a floating-point tensor, got {x.dtype}; call .float() first.")
    if x.numel() == 0:
        raise ValueError("Cannot quantize an empty tensor.")
    if not torch.isfinite(x).all():
        raise ValueError("The tensor holds inf or NaN; int8 quantization needs finite values.")
    return x


def _reduce(x: torch.Tensor, axis: int | None, fn) -> torch.Tensor:
    """fn over every dim except ``axis`` (per channel), or over all (per tensor); keeps dims to broadcast."""
    if axis is None:
        return fn(x.reshape(-1), 0).reshape([1] * x.dim())
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis={axis} is out of range for a tensor with {x.dim()} dims.")
    dims = [d for d in range(x.dim()) if d != axis % x.dim()]
    out = x
    for d in sorted(dims, reverse=True):
        out = fn(out, d).unsqueeze(d)
    return out


def _amax(t, d):
    return t.abs().amax(d)


def quantize_absmax(x: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8: q = round(x / scale) with scale = max|x| / 127, so x ~ q * scale.

    ``axis=None`` uses one scale for the tensor; ``axis=0`` one per row (per output channel of
    a Linear weight). Dettmers et al. write the reciprocal, s = 127 / max|x|.
    """
    x = _check_float_tensor(x)
    absmax = _reduce(x.detach().float(), axis, _amax)
    scale = torch.where(absmax > 0, absmax / QMAX, torch.ones_like(absmax))  # an all-zero channel stays 0
    q = torch.clamp(torch.round(x.float() / scale), -QMAX, QMAX).to(torch.int8)
    return q, scale


def dequantize_absmax(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Back to float32: q * scale."""
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8:
        raise TypeError(f"q must be an int8 tensor from quantize_absmax, got {getattr(q, 'dtype', type(q).__name__)}.")
    return q.float() * scale


def quantize_zeropoint(x: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int8 over [-128, 127]: q = round(x / scale) + zero_point.

    The range [min, max] is widened to include 0 so that 0 is stored exactly; all 256
    codes cover it, which suits one-sided data (e.g. after a ReLU) better than absmax.
    """
    x = _check_float_tensor(x)
    xf = x.detach().float()
    lo = torch.clamp(_reduce(xf, axis, lambda t, d: t.amin(d)), max=0.0)
    hi = torch.clamp(_reduce(xf, axis, lambda t, d: t.amax(d)), min=0.0)
    scale = torch.where(hi > lo, (hi - lo) / 255.0, torch.ones_like(hi))
    zero_point = torch.clamp(-128 - torch.round(lo / scale), -128, 127)
    q = torch.clamp(torch.round(x.float() / scale) + zero_point, -128, 127).to(torch.int8)
    return q, scale, zero_point.to(torch.int32)


def dequantize_zeropoint(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """Back to float32: (q - zero_point) * scale."""
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8:
        raise TypeError("q must be an int8 tensor from quantize_zeropoint.")
    return (q.float() - zero_point.float()) * scale


def quantization_error(x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    """Max and mean absolute error, RMSE and signal-to-quantization-noise ratio (dB)."""
    if x.shape != x_hat.shape:
        raise ValueError(f"Shapes differ: {tuple(x.shape)} vs {tuple(x_hat.shape)}.")
    err = (x_hat.float() - x.float()).reshape(-1)
    noise = err.pow(2).mean().item()
    signal = x.float().pow(2).mean().item()
    return {"max_abs": err.abs().max().item(), "mean_abs": err.abs().mean().item(), "rmse": math.sqrt(noise),
            "sqnr_db": 10 * math.log10(signal / noise) if noise > 0 else math.inf}


# --- weight-only int8 models ---------------------------------------------------


class Int8Linear(nn.Module):
    """A Linear whose weight is stored as int8 plus one float scale per output channel.

    The weight is dequantized on the fly in forward; activations stay in float, so this
    saves memory (about 4x on the weights) but not matmul time.
    """

    def __init__(self, linear: nn.Linear, per_channel: bool = True):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = quantize_absmax(linear.weight.detach(), axis=0 if per_channel else None)
        self.register_buffer("weight_int8", q)  # (out, in) int8
        self.register_buffer("scale", scale.to(linear.weight.dtype))  # (out, 1) or (1, 1)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.to(self.scale.dtype) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight, per-{'channel' if self.scale.numel() > 1 else 'tensor'} scale"


def quantize_linear_weights(model: nn.Module, per_channel: bool = True, skip: tuple[str, ...] = ()) -> nn.Module:
    """A copy of ``model`` with every nn.Linear (except names containing a ``skip`` string) as Int8Linear."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
    qmodel = copy.deepcopy(model)
    targets = [(name, m) for name, m in qmodel.named_modules() if isinstance(m, nn.Linear)
               and not any(s in name for s in skip)]
    if not targets:
        raise ValueError("The model has no nn.Linear layer to quantize (HF GPT-2 uses Conv1D: convert it or pick another model).")
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(qmodel.get_submodule(parent_name) if parent_name else qmodel, child, Int8Linear(linear, per_channel))
    return qmodel.eval()


def torch_dynamic_int8(model: nn.Module, per_channel: bool = False) -> nn.Module:
    """torch's own reference: ``torch.ao.quantization.quantize_dynamic`` on every nn.Linear.

    Weights become int8 (per tensor, or per output channel) and activations are quantized on
    the fly, per tensor, so the matmuls run in int8. torch 2.x marks
    ``torch.ao.quantization`` deprecated in favour of the separate ``torchao`` package; it still
    runs in the installed torch, so we silence the warning and use it as an independent check.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

        qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
        return quantize_dynamic(copy.deepcopy(model).float().eval(), {nn.Linear: qconfig}, dtype=torch.qint8)


def serialized_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: comparable across float, int8 and packed modules."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
