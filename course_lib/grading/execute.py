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

from .sandbox import KERNEL_NAME, kernel_env, write_kernelspec


@dataclass
class Limits:
    cell_timeout: float = 120.0  # seconds one cell may run before the kernel is killed
    time_limit: float = 600.0  # seconds for the whole notebook, replays included
    memory_mb: int = 4096  # memory limit of the kernel (RLIMIT_DATA), MiB (0: none)
    max_restarts: int = 3  # fresh kernels after hangs or crashes before giving up on the rest
    threads: int = 1  # OMP/MKL threads per kernel (parallel workers share the cores)
    smoke: bool = True  # run labs with COURSE_SMOKE=1 (tiny sizes)


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


def run_notebook(nb: NotebookNode, limits: Limits, cwd: str, extra_env: dict[str, str] | None = None) -> list[CellRun]:
    """Execute ``nb`` in place (outputs filled in); return one CellRun per cell (markdown: 'ok')."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    runs = [CellRun(i, "ok" if c.cell_type != "code" or not c.source.strip() else "not-run") for i, c in enumerate(nb.cells)]
    deadline = time.monotonic() + limits.time_limit
    env = kernel_env({"COURSE_SMOKE": "1" if limits.smoke else "0", "OMP_NUM_THREADS": str(limits.threads),
                      "MKL_NUM_THREADS": str(limits.threads), "OPENBLAS_NUM_THREADS": str(limits.threads), **(extra_env or {})})
    bad: set[int] = set()  # cells that hung or crashed: never replayed
    start, restarts = 0, 0
    with tempfile.TemporaryDirectory(prefix="course-kernel-") as kdir:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager

        cpu_backstop = int(limits.time_limit * max(1, limits.threads) * 2) + 60
        spec_dirs = write_kernelspec(kdir, limits.memory_mb, cpu_backstop)
        replies: dict[int, dict] = {}  # cell index -> the kernel's execute_reply

        def record(cell_index, execute_reply, **_):
            replies[cell_index] = execute_reply

        while start < len(nb.cells):
            km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dirs)]))
            client = NotebookClient(nb, km=km, kernel_name=KERNEL_NAME, allow_errors=True, interrupt_on_timeout=False,
                                    shutdown_kernel="immediate", timeout=int(limits.cell_timeout), startup_timeout=120,
                                    record_timing=False, on_cell_executed=record)
            stopped_at, current = None, None
            try:
                with client.setup_kernel(cwd=cwd, env=env, cleanup_kc=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
                    for i in range(start):  # replay what had succeeded, on copies: outputs stay as first recorded
                        if runs[i].status == "ok" and i not in bad and nb.cells[i].cell_type == "code" and nb.cells[i].source.strip():
                            current = i
                            client.timeout = max(1, int(min(limits.cell_timeout, deadline - time.monotonic())))
                            client.execute_cell(copy.deepcopy(nb.cells[i]), i)
                    for i in range(start, len(nb.cells)):
                        cell = nb.cells[i]
                        if cell.cell_type != "code" or not cell.source.strip():
                            continue
                        remaining = deadline - time.monotonic()
                        if remaining <= 1:
                            break
                        current = i
                        client.timeout = max(1, int(min(limits.cell_timeout, remaining)))
                        began = time.perf_counter()
                        client.execute_cell(cell, i)
                        content = replies.get(i, {}).get("content", {})
                        if content.get("status", "error") == "ok":
                            runs[i] = CellRun(i, "ok", seconds=time.perf_counter() - began)
                        else:
                            runs[i] = CellRun(i, "error", content.get("ename", "Error"), str(content.get("evalue", ""))[:500],
                                              time.perf_counter() - began)
                            if not any(o.get("output_type") == "error" for o in cell.outputs):  # tracebacks were hidden
                                cell.outputs.append(_error_output(runs[i].ename, runs[i].evalue))
            except CellTimeoutError:
                stopped_at = current
                runs[current] = CellRun(current, "timeout", "TimeLimitExceeded",
                                        f"the cell ran longer than {client.timeout} s and was stopped")
            except DeadKernelError:
                stopped_at = current
                runs[current] = CellRun(current, "crashed", "KernelDied", _exit_description(_exit_code(km)))
            except Exception as exc:
                if current is not None:  # lost contact with a running kernel: treat it like a crash
                    stopped_at = current
                    runs[current] = CellRun(current, "crashed", "KernelDied", f"{type(exc).__name__}: {exc}")
                else:  # the kernel could not start (e.g. a memory limit below what Python needs)
                    for run in runs[start:]:
                        if run.status == "not-run":
                            run.ename, run.evalue = "KernelFailed", f"the kernel could not start: {type(exc).__name__}: {exc}"
                    return runs
                for run in runs[start:]:
                    if run.status == "not-run":
                        run.ename, run.evalue = "KernelFailed", f"the kernel could not start: {type(exc).__name__}: {exc}"
                return runs
            if stopped_at is not None and current is not None and current < start:
                runs[current].evalue += " (when replayed after a restart)"
            if stopped_at is None:
                break
            nb.cells[stopped_at].outputs.append(_error_output(runs[stopped_at].ename, runs[stopped_at].evalue))
            bad.add(stopped_at)
            start, restarts = max(start, stopped_at + 1), restarts + 1
            if restarts > limits.max_restarts:
                break
    for run in runs:
        if run.status == "not-run":
            run.ename = "NotRun"
            run.evalue = ("the notebook's time limit ran out first" if time.monotonic() >= deadline - 1
                          else f"the kernel was restarted {restarts} times; later cells were not run")
    return runs
