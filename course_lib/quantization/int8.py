"""Int8 quantization of tensors and models.

Absmax (symmetric) and zero-point (asymmetric) quantization, per tensor or per
channel, as in Dettmers et al. 2022 (LLM.int8(), arXiv 2208.07339), and weight-only int8
versions of a model's ``nn.Linear`` layers; torch's dynamic int8 as an independent check.
"""

from __future__ import annotations

import copy
import io
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

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


def quantize_linear_weights(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """A copy of ``model`` with every nn.Linear as Int8Linear."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
    qmodel = copy.deepcopy(model)
    targets = [(name, m) for name, m in qmodel.named_modules() if isinstance(m, nn.Linear)]
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
