"""Run an untrusted notebook cell by cell and record how each cell ended.

The kernel is the sandbox kernel (resource limits, reduced environment, and where the
host allows it its own namespaces and memory cgroup: see ``sandbox``). A cell
that errors is recorded and execution goes on, as in nbgrader. A cell that runs
past its time, or kills the kernel (``os._exit``, ``os.abort``, the memory
limit), is recorded too; then a fresh kernel replays the cells that had
succeeded before it (skipping every cell that hung or crashed) and execution
continues after it, so one bad cell costs only the points that depend on it.

Whether a cell failed is read from the kernel's execute reply (``status``), not
from its printed output, so text that looks like "passed" counts for nothing
and a student who hides tracebacks still fails.

The grader's own memory stays bounded whatever the kernel prints: at most
``MAX_CELL_OUTPUT_BYTES`` of one cell's outputs are kept (then a note), and a
ZMQ message above ``MAX_MESSAGE_BYTES`` is refused by the socket (the kernel that
sent it loses that output, or its cell runs out of time). Every process of one
run_notebook call is in one memory cgroup when the host has one, killed at the end.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbformat.v4 import new_output

from ..checks import check_int, check_number
from .cgroup import MemoryCgroup
from .sandbox import KERNEL_NAME, Isolation, kernel_env, write_kernelspec

MAX_CELL_OUTPUT_BYTES = 2 * 2**20  # outputs of one cell the grader keeps; the rest is cut
MAX_MESSAGE_BYTES = 16 * 2**20  # largest ZMQ message the grader accepts from a kernel (and a probe cell's outputs)
PROBE_KEY = "course_probe"  # cell metadata of the grader's probe cells (see autograde)


@dataclass
class Limits:
    cell_timeout: float = 120.0  # seconds one cell may run before the kernel is killed
    time_limit: float = 600.0  # seconds for the whole notebook, replays included
    memory_mb: int = 4096  # memory limit per kernel process (RLIMIT_DATA; RLIMIT_AS without a cgroup), MiB (0: none)
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
    if 128 < code <= 128 + 64:  # the sandbox's init reports a kernel killed by signal N as 128+N
        code = 128 - code
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


class _BoundedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse messages above MAX_MESSAGE_BYTES."""

    def _create_connected_socket(self, channel, identity=None):
        self.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # default for sockets made from now on
        return super()._create_connected_socket(channel, identity=identity)


def _output_bytes(out: NotebookNode) -> int:
    if out.get("output_type") == "stream":
        return len(out.get("text", ""))
    return len(json.dumps(out.get("data", {}))) + len(json.dumps(out.get("traceback", [])))


class _BoundedNotebookClient(NotebookClient):
    """A NotebookClient that keeps at most MAX_CELL_OUTPUT_BYTES of one cell's outputs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._kept: dict[int, int] = {}  # cell index -> bytes of outputs kept in its current run

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        self._kept[cell_index] = 0
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    def output(self, outs, msg, display_id, cell_index):
        kept = self._kept.get(cell_index, 0)
        limit = MAX_CELL_OUTPUT_BYTES
        if PROBE_KEY in self.nb.cells[cell_index].get("metadata", {}):  # a probe's answer is one message, data only
            limit = MAX_MESSAGE_BYTES
        if kept > limit:  # already cut: drop the rest
            return None
        out = super().output(outs, msg, display_id, cell_index)
        if out is None:
            return None
        kept += _output_bytes(out)
        if kept > limit:
            if out in outs:
                outs.remove(out)
            note = f"[output cut: more than {limit // 2**20} MB]\n"
            outs.append(new_output("stream", name="stderr", text=note))
            kept = limit + 1
        self._kept[cell_index] = kept
        return out

    execute_cell = run_sync(async_execute_cell)


class _StartFailed(RuntimeError):
    """The kernel did not start (a memory limit below what Python needs, a broken environment)."""


def _session(nb: NotebookNode, runs: list[CellRun], start: int, skip: set[int], limits: Limits, deadline: float,
             spec_dirs: str, cwd: str, env: dict[str, str]) -> int | None:
    """One kernel's life: replay the good cells before ``start``, then run from ``start`` on.

    Returns the index of the cell that hung or killed the kernel (recorded in ``runs``), or None
    when the notebook ran to its end or out of time.
    """
    replies: dict[int, dict] = {}  # cell index -> the kernel's execute_reply

    def record(cell_index, execute_reply, **_):
        replies[cell_index] = execute_reply

    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[spec_dirs]))
    km.client_factory = _BoundedKernelClient
    client = _BoundedNotebookClient(nb, km=km, kernel_name=KERNEL_NAME, allow_errors=True, interrupt_on_timeout=False,
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


def _cgroup_mb(memory_mb: int) -> int:
    """The cgroup's limit: a margin above the per-process limit, so one runaway allocation reads as MemoryError."""
    return memory_mb + max(128, memory_mb // 4) if memory_mb > 0 else 0


def run_notebook(nb: NotebookNode, limits: Limits, cwd: str, extra_env: dict[str, str] | None = None,
                 isolation: Isolation | None = None) -> list[CellRun]:
    """Execute ``nb`` in place (outputs filled in); return one CellRun per cell (markdown and empty cells: 'ok').

    ``isolation``: what the kernel may see and write (see ``sandbox.Isolation``); None: no hiding, but
    still the kernel's own PID namespace and memory cgroup where the host has them.
    """
    runs = [CellRun(i, "ok" if c.cell_type != "code" or not c.source.strip() else "not-run") for i, c in enumerate(nb.cells)]
    deadline = time.monotonic() + limits.time_limit
    threads = str(limits.threads)
    env = kernel_env({"COURSE_SMOKE": "1" if limits.smoke else "0", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                      "OPENBLAS_NUM_THREADS": threads, **(extra_env or {})})
    cgroup = MemoryCgroup.create(_cgroup_mb(limits.memory_mb))
    try:
        with tempfile.TemporaryDirectory(prefix="course-kernel-") as kdir:
            cpu_backstop = int(limits.time_limit * max(1, limits.threads) * 2) + 60
            spec_dirs = str(write_kernelspec(kdir, limits.memory_mb, cpu_backstop, isolation=isolation,
                                             cgroup=str(cgroup.path) if cgroup else None))
            why_not_run = _run_sessions(nb, runs, limits, deadline, spec_dirs, cwd, env)
    finally:
        if cgroup is not None:
            cgroup.kill_all()
            cgroup.remove()
    for run in runs:
        if run.status == "not-run":
            run.ename = "NotRun"
            run.evalue = why_not_run or "the notebook's time limit ran out first"
    return runs


def _run_sessions(nb: NotebookNode, runs: list[CellRun], limits: Limits, deadline: float, spec_dirs: str, cwd: str,
                  env: dict[str, str]) -> str:
    """Kernel after kernel until the notebook is done; returns why cells were left unrun ('' if none were)."""
    skip: set[int] = set()  # cells that hung or crashed: never replayed
    start, restarts = 0, 0
    while True:
        try:
            stopped = _session(nb, runs, start, skip, limits, deadline, spec_dirs, cwd, env)
        except _StartFailed as exc:
            return f"the kernel could not start: {exc}"
        if stopped is None:
            return ""
        nb.cells[stopped].outputs.append(_error_output(runs[stopped].ename, runs[stopped].evalue))
        skip.add(stopped)
        start, restarts = max(start, stopped + 1), restarts + 1
        if restarts > limits.max_restarts:
            return f"the kernel was restarted {limits.max_restarts} times; later cells were not run"
