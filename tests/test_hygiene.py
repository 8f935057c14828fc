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


def _bound_names(target):
    """Names an assignment target binds (x, (x, y), *x), not those read inside x[i] or x.attr."""
    import ast

    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _bound_names(elt)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_parameters_mean_what_they_say(path):
    """Every name the parameters cell sets is read later, and no later cell assigns it again (a value passed
    to papermill must not be overwritten). SMOKE is the runner's own switch and may go unread."""
    import ast
    import re

    code = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    params = "".join(code[0]["source"])
    names = {n for node in ast.walk(ast.parse(params)) if isinstance(node, ast.Assign)
             for target in node.targets for n in _bound_names(target)}
    rest = ["".join(c["source"]) for c in code[1:]]
    unread = sorted(n for n in names - {"SMOKE"} if not any(re.search(rf"\b{n}\b", r) for r in rest))
    assert not unread, f"{path.name}: parameters never read: {unread}"
    for name in sorted(names):
        for text in rest:
            for node in ast.walk(ast.parse(text)) if "%" not in text else []:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
                hit = [n for t in targets for n in _bound_names(t) if n == name]
                assert not hit, f"{path.name}: a later cell assigns the parameter {name} (line {node.lineno})"
