"""Autograde one submission: rebuild it on the instructor version, run it in the sandbox, score it.

What is graded is the *instructor* notebook with only the student's answer cells
(matched by nbgrader ``grade_id``) and the student's own extra cells put in.
So a deleted or edited test cell, an edited read-only cell, changed points, a
cell that claims to be a test, or outputs faked in the file change nothing:
the original cells (hidden tests included) run, and each such change is named
in the feedback. Points come from how each test cell's execution ended.

``python -m course_lib.grading.autograde SOURCE SUBMISSION RESULT.json [--feedback F.html] [--limits JSON]``
grades in a fresh process; ``batch.py`` runs many of these in parallel.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from ..atomic import atomic_write_text
from . import notebook as nbf
from .execute import CellRun, Limits, run_notebook
from .feedback import write_feedback
from .release import student_version


@dataclass
class ExerciseGrade:
    exercise: str  # the exercise's grade_id
    kind: str  # 'code' or 'written'
    points: float | None  # None: to be graded by hand
    max_points: float
    status: str  # 'passed', 'partial', 'failed', 'not attempted' or 'manual'
    reason: str = ""  # why, in words the student can act on


@dataclass
class SubmissionResult:
    student: str
    lab: str  # notebook stem, e.g. '02_self_attention'
    grades: list[ExerciseGrade] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # changes found in the file (restored cells, ignored cells)
    failed_cells: list[str] = field(default_factory=list)  # ordinary (non-exercise) cells that failed, and why
    seconds: float = 0.0
    error: str = ""  # set when the grader itself could not grade (unreadable file, killed worker)

    @property
    def points(self) -> float:
        return sum(g.points or 0.0 for g in self.grades)

    @property
    def max_points(self) -> float:
        return sum(g.max_points for g in self.grades)


# Student code that reaches into the interpreter or the grading machinery: legal Python, but it can make
# tests pass without a right answer (nothing in one process can stop that), so such cells are flagged.
_TAMPERING = re.compile(r"get_ipython|IPython|sys\.modules|builtins|__import__|course_lib\.grading|showtraceback|ctypes|sys\.settrace|gc\.get_objects")


def _cell_key(cell: NotebookNode) -> str | None:
    return cell.get("id")


def merge(source: NotebookNode, submission: NotebookNode) -> tuple[NotebookNode, list[str], dict[str, str]]:
    """The notebook to grade, the notes on what was restored or ignored, and each exercise's own notes."""
    released = student_version(source)
    released_by_id = {nbf.grade_id(c): c for c in released.cells if nbf.grade_id(c)}
    src_gids = {nbf.grade_id(c) for c in source.cells if nbf.grade_id(c)}
    notes: list[str] = []
    per_exercise: dict[str, str] = {}
    by_gid: dict[str, NotebookNode] = {}
    for cell in submission.cells:
        gid = nbf.grade_id(cell)
        if gid in src_gids:
            if gid in by_gid:
                notes.append(f"cell '{gid}' appears more than once; the first copy was graded.")
            else:
                by_gid[gid] = cell

    # The student's extra cells, each placed after the last lab cell that precedes it in the submission.
    by_position = {**{_cell_key(c): i for i, c in enumerate(source.cells) if _cell_key(c)},
                   **{f"gid:{nbf.grade_id(c)}": i for i, c in enumerate(source.cells) if nbf.grade_id(c)}}
    by_text = {c.source.strip(): i for i, c in enumerate(released.cells) if not nbf.meta(c) and c.source.strip()}
    extras: dict[int, list[NotebookNode]] = {}
    anchor = -1
    for cell in submission.cells:
        gid = nbf.grade_id(cell)
        known = by_position.get(f"gid:{gid}") if gid in src_gids else by_position.get(_cell_key(cell))
        if known is None and not nbf.meta(cell):  # notebooks without cell ids: an unchanged lab cell
            known = by_text.get(cell.source.strip())
        if known is not None:
            anchor = known
            continue
        extra = copy.deepcopy(cell)
        if nbf.meta(extra):
            notes.append(f"cell '{gid or '?'}' is not part of the lab; its grading metadata was ignored.")
            extra.metadata.pop("nbgrader", None)
        extra["id"] = uuid.uuid4().hex[:8]
        extras.setdefault(anchor, []).append(extra)

    student_cells = [(f"answer cell '{nbf.grade_id(c)}'", c) for c in by_gid.values() if nbf.is_solution(c)]
    student_cells += [("an added cell", c) for cells in extras.values() for c in cells if c.cell_type == "code"]
    for where, cell in student_cells:
        hits = sorted(set(_TAMPERING.findall(cell.source)))
        if hits:
            notes.append(f"{where} uses {', '.join(hits)}, which can interfere with grading; flagged for review by hand.")

    graded = copy.deepcopy(source)
    graded.cells = [c for c in extras.get(-1, [])]
    for i, cell in enumerate(source.cells):
        gid = nbf.grade_id(cell)
        cell = copy.deepcopy(cell)
        if nbf.is_solution(cell):
            theirs = by_gid.get(gid)
            if theirs is None or theirs.cell_type != cell.cell_type:
                cell.source = released_by_id[gid].source
                per_exercise[gid] = f"answer cell '{gid}' was missing from the submission"
            else:
                cell.source = theirs.source
        elif gid and nbf.is_protected(cell):
            theirs = by_gid.get(gid)
            what = "test cell" if nbf.is_test(cell) else "read-only cell"
            if theirs is None:
                notes.append(f"{what} '{gid}' was deleted; the original was restored and graded.")
            elif theirs.source.strip() not in {released_by_id[gid].source.strip(), cell.source.strip()}:
                notes.append(f"{what} '{gid}' was edited; the original was restored and graded.")
        graded.cells.append(cell)
        graded.cells += extras.get(i, [])
    for cell in graded.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    graded.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return graded, notes, per_exercise


def _failure(run: CellRun) -> str:
    return f"{run.ename}: {run.evalue}".strip(": ") if run.evalue else run.ename


def score(source: NotebookNode, graded: NotebookNode, runs: list[CellRun], notes: list[str],
          per_exercise: dict[str, str]) -> list[ExerciseGrade]:
    """One grade per exercise from how its test cells ended (all or nothing per test cell)."""
    released = {nbf.grade_id(c): c.source for c in student_version(source).cells if nbf.grade_id(c)}
    index = {nbf.grade_id(c): i for i, c in enumerate(graded.cells) if nbf.grade_id(c)}
    grades = []
    for ex in nbf.exercises(source):
        answer = graded.cells[index[ex.solution_id]] if ex.solution_id in index else None
        unanswered = answer is not None and answer.source.strip() == released.get(ex.solution_id, "").strip()
        if ex.kind == "written":
            if unanswered:
                grades.append(ExerciseGrade(ex.name, "written", 0.0, ex.points, "not attempted", "no answer written"))
            else:
                grades.append(ExerciseGrade(ex.name, "written", None, ex.points, "manual", "graded by hand"))
            continue
        earned, reasons = 0.0, []
        if ex.solution_id in per_exercise:
            reasons.append(per_exercise[ex.solution_id])
        if answer is not None and runs[index[ex.solution_id]].status != "ok":
            reasons.append(f"your answer cell failed: {_failure(runs[index[ex.solution_id]])}")
        for tid in ex.test_ids:
            run = runs[index[tid]]
            points = float(nbf.meta(graded.cells[index[tid]]).get("points", 0))
            if run.status == "ok":
                earned += points
            else:
                reasons.append(f"{tid} failed ({_failure(run)})")
        reasons += [n for n in notes if any(f"'{t}'" in n for t in ex.test_ids)]
        if unanswered:
            status, reasons = "not attempted", ["the answer is still the stub (raise NotImplementedError())"]
        else:
            status = "passed" if earned == ex.points else ("failed" if earned == 0 else "partial")
        grades.append(ExerciseGrade(ex.name, "code", earned, ex.points, status, "; ".join(reasons)))
    return grades


def grade_notebook(source_path: str | Path, submission_path: str | Path, student: str, limits: Limits,
                   feedback_path: str | Path | None = None) -> SubmissionResult:
    """Grade one submission in this process (the sandbox kernel still runs the student's code)."""
    start = time.perf_counter()
    source_path, submission_path = Path(source_path), Path(submission_path)
    result = SubmissionResult(student, source_path.stem)
    source = nbf.read(source_path)
    try:
        submission = nbf.read(submission_path)
    except Exception as exc:
        result.error = f"the submission could not be read: {exc}"
        result.grades = [ExerciseGrade(e.name, e.kind, 0.0, e.points, "failed", result.error) for e in nbf.exercises(source)]
        return result
    graded, notes, per_exercise = merge(source, submission)
    with tempfile.TemporaryDirectory(prefix=f"grade-{student}-") as workdir:
        runs = run_notebook(graded, limits, cwd=workdir)
    result.grades = score(source, graded, runs, notes, per_exercise)
    result.failed_cells = [f"cell {r.index}: {_failure(r)}" for r, c in zip(runs, graded.cells)
                           if r.status != "ok" and not nbf.meta(c)]
    result.notes = notes
    result.seconds = time.perf_counter() - start
    if feedback_path is not None:

        try:
            write_feedback(graded, runs, result, feedback_path, instructor=source)
        except Exception as exc:  # the grades stand without the HTML
            result.error = f"feedback not written: {type(exc).__name__}: {exc}"
    return result


def write_result(result: SubmissionResult, path: str | Path) -> None:
    atomic_write_text(path, json.dumps(asdict(result), indent=1))


def read_result(path: str | Path) -> SubmissionResult:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data["grades"] = [ExerciseGrade(**g) for g in data["grades"]]
    return SubmissionResult(**data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading.autograde", description="Grade one submission.")
    parser.add_argument("source", help="instructor notebook (labs/NN_name.ipynb)")
    parser.add_argument("submission", help="the student's notebook")
    parser.add_argument("result", help="where to write the result JSON")
    parser.add_argument("--student", default="student")
    parser.add_argument("--feedback", default=None, help="where to write the HTML feedback")
    parser.add_argument("--limits", default="{}", help="JSON of Limits fields")
    args = parser.parse_args(argv)
    result = grade_notebook(args.source, args.submission, args.student, Limits(**json.loads(args.limits)), args.feedback)
    write_result(result, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
