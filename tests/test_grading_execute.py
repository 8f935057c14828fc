"""The sandbox executor on its own: how each way a cell can end is recorded, and what runs after it."""

import os
import resource
import subprocess
import sys

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.grading.execute import Limits, run_notebook

LIMITS = Limits(cell_timeout=3, time_limit=90, memory_mb=1024, max_restarts=5, threads=1)


def test_each_failure_is_recorded_and_later_cells_still_run(tmp_path):
    cells = {
        "x = 41\nprint('hi')": ("ok", ""),
        "raise ValueError('boom')": ("error", "ValueError"),
        "import os; os._exit(3)": ("crashed", "exited with code 3"),
        "while True:\n    try:\n        pass\n    except BaseException:\n        pass": ("timeout", "longer than 3 s"),
        "import os; os.abort()": ("crashed", "SIGABRT"),
        "get_ipython().showtraceback = lambda *a, **k: None\nassert False, 'hidden'": ("error", "AssertionError"),
        "hog = []\nwhile True:\n    hog.append(bytearray(50_000_000))": ("error", "MemoryError"),
        "import sys; sys.exit(0)": ("error", "SystemExit"),
        "assert x == 41, 'state from before the crashes was replayed'": ("ok", ""),
    }
    nb = new_notebook(cells=[new_markdown_cell("# title")] + [new_code_cell(src) for src in cells])
    runs = run_notebook(nb, LIMITS, cwd=str(tmp_path))
    assert runs[0].status == "ok"  # markdown
    for run, cell, (status, words) in zip(runs[1:], nb.cells[1:], cells.values()):
        assert run.status == status, (cell.source, run)
        assert words in f"{run.ename} {run.evalue}", (cell.source, run)
        if status != "ok":  # the verdict is also in the notebook, even where the student hid tracebacks
            assert any(o.get("output_type") == "error" for o in cell.outputs), cell.source
    assert nb.cells[1].outputs[0]["text"] == "hi\n"


def test_restart_budget_and_start_failure(tmp_path):
    nb = new_notebook(cells=[new_code_cell(s) for s in ["import os", "os._exit(0)", "os._exit(1)", "print(1)"]])
    runs = run_notebook(nb, Limits(max_restarts=1), cwd=str(tmp_path))
    assert [r.status for r in runs] == ["ok", "crashed", "crashed", "not-run"]
    assert "restarted 1 times" in runs[3].evalue
    runs = run_notebook(new_notebook(cells=[new_code_cell("x = 1")]), Limits(memory_mb=5), cwd=str(tmp_path))
    assert runs[0].status == "not-run" and "could not start" in runs[0].evalue


def test_sandbox_launcher_sets_limits():
    """The launcher's limits are the process's own (checked with the resource module, not through our code)."""
    code = ("import resource, sys; from course_lib.grading.sandbox import apply_limits; apply_limits(300, 7, 2); "
            "print(resource.getrlimit(resource.RLIMIT_DATA)[0] >> 20, resource.getrlimit(resource.RLIMIT_CPU)[0], "
            "resource.getrlimit(resource.RLIMIT_FSIZE)[0] >> 20, resource.getrlimit(resource.RLIMIT_CORE)[0]); "
            "big = bytearray(400 * 2**20)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.stdout.split() == ["300", "7", "2", "0"]
    assert "MemoryError" in done.stderr
    assert resource.getrlimit(resource.RLIMIT_DATA)[0] != 300 << 20  # the test process itself is untouched
