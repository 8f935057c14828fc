"""Run an untrusted notebook cell by cell and record how each cell ended.

The kernel is the sandbox kernel (resource limits, reduced environment). A cell
that errors is recorded and execution goes on, as in nbgrader. A cell that runs
past its time, or kills the kernel (``os._exit``, ``os.abort``, the memory
limit), is recorded too; then a fresh kernel replays the cells that had
succeeded before it (skipping every cell that hung or crashed) and execution
continues after it, so one bad cell costs only the points that depend on it.

Whether a cell failed is read from the kernel's execute reply (``status``), not
from its printed output, so text that looks like "passed" counts for nothing
and a student who hides tracebacks still fails.
"""

from __future__ import annotations

import copy
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

from nbformat import NotebookNode
from nbformat.v4 import new_output

from ..checks import check_int, check_number
from .sandbox import KERNEL_NAME, kernel_env, write_kernelspec


@dataclass
class Limits:
    cell_timeout: float = 120.0  # seconds one cell may run before the kernel is killed
    time_limit: float = 600.0  # seconds for the whole notebook, replays included
    memory_mb: int = 4096  # memory limit of the kernel (RLIMIT_DATA), MiB (0: none)
    max_restarts: int = 3  # fresh kernels after hangs or crashes before giving up on the rest
    threads: int = 1  # OMP/MKL threads per kernel (parallel workers share the cores)
    smoke: bool = True  # run labs with COURSE_SMOKE=1 (tiny sizes)

    def __post_init__(self):
        for name in ("cell_timeout", "time_limit"):
            check_number("Limits", name, getattr(self, name), 0.0, low_open=True)
        check_int("Limits", "memory_mb", self.memory_mb, 0)
        check_int("Limits", "max_restarts", self.max_restarts, 0)
        check_int("Limits", "threads", self.threads, 1)


@dataclass
class CellRun:
    index: int  # position of the cell in the notebook
    status: str  # 'ok', 'error', 'timeout', 'crashed' or 'not-run'
    ename: str = ""  # exception name (errors), or what stopped the cell
    evalue: str = ""  # exception message, or a plain-words reason
    seconds: float = 0.0  # wall-clock time of the cell


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _exit_description(code: int | None) -> str:
    if code is None:
        return "the kernel stopped responding"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGKILL": " (killed: memory or CPU limit?)", "SIGABRT": " (os.abort() or a failed C assertion)",
                "SIGSEGV": " (segmentation fault)", "SIGXCPU": " (CPU-time limit)"}.get(name, "")
        return f"the kernel died from {name}{hint}"
    return f"the kernel exited with code {code} (os._exit or exit from C code)"


def _exit_code(km) -> int | None:
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    if proc is None:
        return None
    try:
        return proc.wait(timeout=2)
    except Exception:
        return None


class _StartFailed(RuntimeError):
    """The kernel did not start (a memory limit below what Python needs, a broken environment)."""


def _session(nb: NotebookNode, runs: list[CellRun], start: int, skip: set[int], limits: Limits, deadline: float,
             spec_dirs: str, cwd: str, env: dict[str, str]) -> int | None:
    """One kernel's life: replay the good cells before ``start``, then run from ``start`` on.

    Returns the index of the cell that hung or killed the kernel (recorded in ``runs``), or None
    when the notebook ran to its end or out of time.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    replies: dict[int, dict] = {}  # cell index -> the kernel's execute_reply

    def record(cell_index, execute_reply, **_):
        replies[cell_index] = execute_reply

    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[spec_dirs]))
    client = NotebookClient(nb, km=km, kernel_name=KERNEL_NAME, allow_errors=True, interrupt_on_timeout=False,
                            shutdown_kernel="immediate", startup_timeout=120, record_timing=False, on_cell_executed=record)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    current = None
    try:
        with client.setup_kernel(cwd=cwd, env=env, cleanup_kc=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            for i in code:
                remaining = deadline - time.monotonic()
                if remaining <= 1:
                    return None
                client.timeout = max(1, int(min(limits.cell_timeout, remaining)))
                current = i
                if i < start:  # replay on a copy: the outputs stay as first recorded
                    if runs[i].status == "ok" and i not in skip:
                        client.execute_cell(copy.deepcopy(nb.cells[i]), i)
                    continue
                began = time.perf_counter()
                client.execute_cell(nb.cells[i], i)
                content = replies.get(i, {}).get("content", {})
                if content.get("status", "error") == "ok":
                    runs[i] = CellRun(i, "ok", seconds=time.perf_counter() - began)
                    continue
                runs[i] = CellRun(i, "error", content.get("ename", "Error"), str(content.get("evalue", ""))[:500],
                                  time.perf_counter() - began)
                if not any(o.get("output_type") == "error" for o in nb.cells[i].outputs):  # tracebacks were hidden
                    nb.cells[i].outputs.append(_error_output(runs[i].ename, runs[i].evalue))
        return None
    except CellTimeoutError:
        runs[current] = CellRun(current, "timeout", "TimeLimitExceeded", f"the cell ran longer than {client.timeout} s and was stopped")
    except DeadKernelError:
        runs[current] = CellRun(current, "crashed", "KernelDied", _exit_description(_exit_code(km)))
    except Exception as exc:
        if current is None:
            raise _StartFailed(f"{type(exc).__name__}: {exc}") from exc
        runs[current] = CellRun(current, "crashed", "KernelDied", f"lost contact with the kernel ({type(exc).__name__}: {exc})")
    if current < start:
        runs[current].evalue += " (when replayed after a restart)"
    return current


def run_notebook(nb: NotebookNode, limits: Limits, cwd: str, extra_env: dict[str, str] | None = None) -> list[CellRun]:
    """Execute ``nb`` in place (outputs filled in); return one CellRun per cell (markdown and empty cells: 'ok')."""
    runs = [CellRun(i, "ok" if c.cell_type != "code" or not c.source.strip() else "not-run") for i, c in enumerate(nb.cells)]
    deadline = time.monotonic() + limits.time_limit
    threads = str(limits.threads)
    env = kernel_env({"COURSE_SMOKE": "1" if limits.smoke else "0", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                      "OPENBLAS_NUM_THREADS": threads, **(extra_env or {})})
    skip: set[int] = set()  # cells that hung or crashed: never replayed
    start, restarts, why_not_run = 0, 0, ""
    with tempfile.TemporaryDirectory(prefix="course-kernel-") as kdir:
        cpu_backstop = int(limits.time_limit * max(1, limits.threads) * 2) + 60
        spec_dirs = str(write_kernelspec(kdir, limits.memory_mb, cpu_backstop))
        while True:
            try:
                stopped = _session(nb, runs, start, skip, limits, deadline, spec_dirs, cwd, env)
            except _StartFailed as exc:
                why_not_run = f"the kernel could not start: {exc}"
                break
            if stopped is None:
                break
            nb.cells[stopped].outputs.append(_error_output(runs[stopped].ename, runs[stopped].evalue))
            skip.add(stopped)
            start, restarts = max(start, stopped + 1), restarts + 1
            if restarts > limits.max_restarts:
                why_not_run = f"the kernel was restarted {limits.max_restarts} times; later cells were not run"
                break
    for run in runs:
        if run.status == "not-run":
            run.ename = "NotRun"
            run.evalue = why_not_run or "the notebook's time limit ran out first"
    return runs
