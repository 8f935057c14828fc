"""Committed notebooks follow the lab conventions; the code is lint-clean."""

import json
import subprocess
import sys

import pytest

from course_lib import labs

LABS = labs.discover()


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_is_stripped_and_follows_conventions(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit with outputs stripped (make strip)"
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "first code cell must be tagged 'parameters'"
    first = "".join(code[0]["source"])
    assert "SMOKE" in first and "COURSE_SMOKE" in first and 'DEVICE = "auto"' in first
    assert "environment_report" in "".join(code[1]["source"]), "second code cell must print the environment report"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "course_lib", "tests", "labs", "bench"],
                          capture_output=True, text=True, cwd=labs.REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _committed_notebooks():
    out = subprocess.run(["git", "ls-files", "*.ipynb"], capture_output=True, text=True, cwd=labs.REPO)
    return [labs.REPO / p for p in out.stdout.split()] or LABS


def test_no_notebook_holds_a_control_character():
    # e.g. a Python "\a" escape that ate the "\a" of LaTeX's \approx and left a BEL byte in the markdown
    bad = []
    for path in _committed_notebooks():
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            for ch in "".join(cell["source"]):
                if (ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127:
                    bad.append(f"{path.name} cell {i}: {ch!r}")
    assert not bad, bad[:10]
