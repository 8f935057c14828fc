"""Device, dtype and seed: chosen in one place for every lab and test.

cuda -> mps -> cpu; bf16 autocast where the device supports it, fp16 with a
gradient scaler where it does not, plain fp32 on CPU.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from .offline import hub_reachable, log_environment


def get_device(preference: str | torch.device = "auto") -> torch.device:
    """Return the device to use: 'auto' picks cuda, then mps, then cpu."""
    if isinstance(preference, torch.device):
        return preference
    pref = (preference or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"DEVICE={preference!r} was requested but CUDA is not available; use 'auto' or 'cpu'.")
    if pref == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("DEVICE='mps' was requested but MPS is not available; use 'auto' or 'cpu'.")
    if pref.split(":")[0] not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"Unknown DEVICE={preference!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    return torch.device(pref)


@dataclass(frozen=True)
class Precision:
    """How to run the forward pass on a device."""

    device_type: str  # 'cuda', 'mps' or 'cpu'
    dtype: torch.dtype  # autocast dtype; torch.float32 means no autocast
    use_scaler: bool  # True only for fp16, whose gradients can underflow

    @property
    def name(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[self.dtype]


def best_precision(device: torch.device | str = "auto", prefer: str = "auto") -> Precision:
    """bf16 where supported, fp16 + GradScaler where not, fp32 on CPU.

    ``prefer`` forces 'fp32', 'bf16' or 'fp16' (e.g. for a memory comparison).
    """
    device = get_device(device)
    if prefer == "fp32" or (prefer == "auto" and device.type == "cpu"):
        return Precision(device.type, torch.float32, False)
    if prefer == "bf16" or prefer == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return Precision(device.type, torch.bfloat16, False)
        if prefer == "bf16":
            if device.type == "cpu":
                return Precision(device.type, torch.bfloat16, False)
            raise ValueError(f"bf16 is not supported on {device}; use prefer='auto'.")
    if device.type == "cpu":
        raise ValueError("fp16 autocast with a gradient scaler needs a GPU; on CPU use 'fp32' or 'bf16'.")
    return Precision(device.type, torch.float16, device.type == "cuda")


def inference_dtype(device: torch.device | str = "auto", model_type: str = "") -> tuple[torch.dtype, str]:
    """(dtype to hold a model's weights in for inference, the reason in words): one decision for every lab.

    bf16 where the GPU supports it; on a GPU without bf16 (e.g. a T4), float16, except for T5-family
    models, whose activations overflow float16's range (65,504), which get float32; float32 on CPU.
    """
    device = get_device(device)
    if device.type == "cpu":
        return torch.float32, "CPU: float32"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16, f"{device.type}: bfloat16 (supported; half the memory of float32, float32's range)"
    if "t5" in model_type.lower():
        return torch.float32, (f"{device.type}: float32, because this device has no bfloat16 and T5 overflows in float16 "
                               "(activations beyond float16's 65,504)")
    return torch.float16, f"{device.type}: float16 (no bfloat16 on this device)"


def autocast(precision: Precision):
    """Autocast context for ``precision`` (a no-op for fp32)."""
    if precision.dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=precision.device_type, dtype=precision.dtype)


def grad_scaler(precision: Precision) -> torch.amp.GradScaler:
    """A GradScaler that is active only when fp16 needs one."""
    return torch.amp.GradScaler(precision.device_type, enabled=precision.use_scaler)


def set_seed(seed: int = 0) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def smoke_mode() -> bool:
    """True when COURSE_SMOKE=1 (CI): labs shrink to tiny sizes."""
    return os.environ.get("COURSE_SMOKE", "").strip().lower() in {"1", "true", "yes", "on"}


_THREADS: int | None = None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and job schedulers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def choose_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Torch threads for this process: $COURSE_THREADS if set, else the CPUs that are idle right now.

    torch starts one thread per core and makes them wait for each other at every operation; on a
    machine whose cores are busy with other work, those waits make a small model many times slower
    than one thread would. Counting only idle cores (available CPUs minus the busy ones) avoids that.
    """
    value = os.environ.get("COURSE_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"COURSE_THREADS={value!r}: expected a whole number >= 1 (or unset it).")
        return int(value)
    cpus = available_cpus() if cpus is None else cpus
    if load is None:
        load = busy_cpus()
    return max(1, min(cpus, int(cpus - load + 0.5)))


def busy_cpus(sample_s: float = 0.25) -> float:
    """How many CPUs other work keeps busy right now, measured over ``sample_s`` from /proc/stat.

    The 1-minute load average lags: right after a lab ends it still counts that lab's threads, and the
    next lab would start with too few. Elsewhere than Linux it is the fallback.
    """
    def snapshot():
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait

    try:
        total0, idle0 = snapshot()
        time.sleep(sample_s)
        total1, idle1 = snapshot()
        share = 1 - (idle1 - idle0) / max(total1 - total0, 1)
        return max(0.0, share) * (os.cpu_count() or 1)
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0


def configure_threads(threads: int | None = None) -> int:
    """Set torch's thread count once per process (later calls keep it) and return it."""
    global _THREADS
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads={threads}: must be >= 1.")
        _THREADS = threads
    elif _THREADS is None:
        _THREADS = choose_threads()
    else:
        return _THREADS
    torch.set_num_threads(_THREADS)
    return _THREADS


def environment_report(device: torch.device | str = "auto", show: bool = True) -> dict:
    """Versions, device, precision and hub status; each lab prints it in its second cell."""
    device = get_device(device)
    precision = best_precision(device)
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "precision": precision.name,
        "cpu_threads": configure_threads(),
        "smoke": smoke_mode(),
        "hub": "online" if hub_reachable() else "offline",
        "DIALOGSUM_DIR": os.environ.get("DIALOGSUM_DIR", "(unset)"),
    }
    for pkg in ("transformers", "datasets", "tokenizers", "evaluate"):
        try:
            report[pkg] = __import__(pkg).__version__
        except ImportError:
            report[pkg] = "not installed"
    log_environment(report["device"], report["precision"])  # the lab runner's summary table reads it back
    if show:
        width = max(map(len, report))
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return report
