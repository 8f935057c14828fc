"""The kernel that runs untrusted notebooks: an IPython kernel started under OS resource limits.

``python -m course_lib.grading.sandbox --memory-mb 4096 --cpu-seconds 1200 -- -f CONNECTION_FILE``
sets the limits on its own process and then *becomes* the IPython kernel (``os.execv``), so the
limits hold for the student's code and every process it starts. Limits:

- memory (``RLIMIT_DATA``: heap and writable anonymous mappings, i.e. what a runaway allocation
  grows): it fails with ``MemoryError`` or kills the kernel, never the grading machine. Unlike an
  address-space limit it ignores address space reserved but not written (CUDA reserves tens of GB);
- CPU seconds (``RLIMIT_CPU``): a backstop behind the grader's wall-clock timeouts;
- file size (``RLIMIT_FSIZE``) and no core dumps (``RLIMIT_CORE``): ``os.abort()`` or a disk-filling
  loop cannot fill the disk.

The environment is reduced to what the labs need (see ``kernel_env``): no cloud credentials or tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path

KERNEL_NAME = "course-sandbox"

# Variables a lab needs; everything else (AWS_*, tokens, SSH agents...) stays out of reach of student code.
_KEEP_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH_", "COURSE_", "DIALOGSUM_", "LC_", "OMP_", "MKL_", "OPENBLAS_", "CUDA_")
_KEEP_NAMES = {"PATH", "HOME", "LANG", "TZ", "VIRTUAL_ENV", "PYTHONPATH", "XDG_CACHE_HOME", "TMPDIR", "MPLBACKEND"}
_DROP_NAMES = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN"}


def kernel_env(extra: dict[str, str] | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: the allow-listed variables of ``base`` (default os.environ) plus ``extra``."""
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items()
           if (k in _KEEP_NAMES or k.startswith(_KEEP_PREFIXES)) and k not in _DROP_NAMES}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra or {})
    return env


def apply_limits(memory_mb: int, cpu_seconds: int, file_mb: int) -> None:
    """Set this process's resource limits (inherited across exec and by children)."""
    def lower(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))

    if memory_mb > 0:
        lower(resource.RLIMIT_DATA, memory_mb * 2**20)
    if cpu_seconds > 0:
        lower(resource.RLIMIT_CPU, cpu_seconds)
    if file_mb > 0:
        lower(resource.RLIMIT_FSIZE, file_mb * 2**20)
    lower(resource.RLIMIT_CORE, 0)


def write_kernelspec(directory: str | Path, memory_mb: int, cpu_seconds: int, file_mb: int = 512) -> Path:
    """A kernelspec folder (``directory/kernels/course-sandbox``) that starts this launcher; returns its parent."""
    spec_dir = Path(directory) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "course_lib.grading.sandbox", "--memory-mb", str(memory_mb),
            "--cpu-seconds", str(cpu_seconds), "--file-mb", str(file_mb), "--", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Python 3 (grading sandbox)", "language": "python",
            "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return Path(directory) / "kernels"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mb", type=int, default=4096, help="memory (RLIMIT_DATA) limit in MiB (0: none)")
    parser.add_argument("--cpu-seconds", type=int, default=0, help="CPU-time limit in seconds (0: none)")
    parser.add_argument("--file-mb", type=int, default=512, help="largest file the kernel may write, MiB (0: none)")
    parser.add_argument("kernel_args", nargs=argparse.REMAINDER, help="arguments for ipykernel, after --")
    args = parser.parse_args(argv)
    kernel_args = args.kernel_args[1:] if args.kernel_args[:1] == ["--"] else args.kernel_args
    apply_limits(args.memory_mb, args.cpu_seconds, args.file_mb)
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *kernel_args])


if __name__ == "__main__":
    main()
