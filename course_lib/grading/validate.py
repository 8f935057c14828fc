"""A student's self-check: run my notebook as it is and tell me where each exercise stands.

Only the public (visible) tests exist in a student's copy, so passing here is
necessary, not sufficient: hidden tests decide the grade. Protected cells are
compared with the checksums nbgrader stored at release, so a student learns
before submitting that an edited test or read-only cell will be put back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import notebook as nbf
from .execute import CellRun, Limits, run_notebook


@dataclass
class ExerciseCheck:
    exercise: str
    status: str  # 'passes public tests', 'fails', 'not attempted', 'written (graded by hand)'
    detail: str = ""


def _changed_protected(nb) -> list[str]:
    from nbgrader.utils import compute_checksum

    changed = []
    for cell in nb.cells:
        m = nbf.meta(cell)
        if nbf.is_protected(cell) and "checksum" in m and compute_checksum(cell) != m["checksum"]:
            changed.append(m.get("grade_id", "?"))
    return changed


def validate(path: str | Path, limits: Limits | None = None) -> tuple[list[ExerciseCheck], list[str], list[CellRun]]:
    """Run the notebook at ``path`` in the sandbox; return per-exercise checks, warnings and the cell runs."""
    from nbgrader.utils import compute_checksum

    path = Path(path)
    nb = nbf.read(path)
    found = nbf.exercises(nb)
    if not found:
        raise ValueError(f"{path.name} has no exercises (no nbgrader cells); nothing to validate.")
    warnings = [f"cell '{gid}' was changed; grading restores the original, so your change will not count."
                for gid in _changed_protected(nb)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    runs = run_notebook(nb, limits or Limits(), cwd=str(path.parent.resolve()))
    index = {nbf.grade_id(c): i for i, c in enumerate(nb.cells) if nbf.grade_id(c)}
    broken = next((r for r, c in zip(runs, nb.cells) if r.status != "ok" and not nbf.meta(c)), None)
    if broken is not None:
        warnings.append(f"cell {broken.index} (not an exercise) failed with {broken.ename}: {broken.evalue}; "
                        "later cells may fail because of it.")
    checks = []
    for ex in found:
        answer = nb.cells[index[ex.solution_id]] if ex.solution_id in index else None
        stub = answer is not None and nbf.meta(answer).get("checksum") == compute_checksum(answer)
        if ex.kind == "written":
            checks.append(ExerciseCheck(ex.name, "not attempted" if stub else "written (graded by hand)"))
            continue
        failures = [f"{tid}: {runs[index[tid]].ename}: {runs[index[tid]].evalue}".rstrip(": ")
                    for tid in ex.test_ids if tid in index and runs[index[tid]].status != "ok"]
        failures += [f"{tid}: the test cell is missing (it will be restored at grading)" for tid in ex.test_ids if tid not in index]
        if stub:
            checks.append(ExerciseCheck(ex.name, "not attempted", "the answer is still the stub"))
        elif failures:
            checks.append(ExerciseCheck(ex.name, "fails", "; ".join(failures)))
        else:
            checks.append(ExerciseCheck(ex.name, "passes public tests"))
    return checks, warnings, runs
