"""Autograde one submission: rebuild it on the student version, run it in the sandbox, judge it here.

What runs in the student's kernel is the *student* version of the lab (no hidden
tests, solutions or mark schemes in it) with only the student's answer cells
(matched by nbgrader ``grade_id``) and their own extra cells put in, plus one probe
cell after each test cell and one per test at the end. A probe cell calls the
student's function on inputs the grader drew freshly and sends the values back as
data (``probe.py``); this process, where no student code ever runs, compares them
with the values the instructor's hidden tests expect. A test cell's points are
earned when its probe's answers are right after the test cell or at the end of the
notebook (an answer written in a later cell still counts), *and* right again in a
second run where the exercise's reference functions in course_lib are unavailable
(``references.py``), with new inputs: an answer that calls the reference earns 0.

``python -m course_lib.grading.autograde SOURCE SUBMISSION RESULT.json [--feedback F.html] [--limits JSON]``
grades in a fresh process; ``batch.py`` runs many of these in parallel.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

from ..atomic import atomic_write_text
from . import notebook as nbf
from .execute import PROBE_KEY, CellRun, Limits, run_notebook
from .feedback import write_feedback
from .probe import MIME, Probe, judge, load_probes, probe_source
from .references import PACKAGE, poisoned_copy
from .release import student_version
from .sandbox import Isolation


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


# Student code that reaches into the interpreter or the grading machinery. Verdicts are decided outside the
# kernel, so this cannot forge points; it is flagged so that an instructor sees who tried.
_TAMPERING = re.compile(r"get_ipython|IPython|sys\.modules|builtins|__import__|course_lib\.grading|showtraceback|ctypes|sys\.settrace|gc\.get_objects")


def _cell_key(cell: NotebookNode) -> str | None:
    return cell.get("id")


def merge(source: NotebookNode, submission: NotebookNode) -> tuple[NotebookNode, list[str], dict[str, str]]:
    """The notebook to run (the student version with the student's answers and extra cells), the notes on
    what was restored or ignored, and each exercise's own notes."""
    released = student_version(source)
    released_by_id = {nbf.grade_id(c): c for c in released.cells if nbf.grade_id(c)}
    src_gids = {nbf.grade_id(c) for c in source.cells if nbf.grade_id(c)}
    notes: list[str] = []
    per_exercise: dict[str, str] = {}
    by_gid: dict[str, NotebookNode] = {}
    for cell in submission.cells:
        gid = nbf.grade_id(cell)
        if nbf.meta(cell).get("grade_id") is not None and gid is None:
            notes.append("a cell's grade_id is not text; its grading metadata was ignored.")
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
        extra.metadata.pop(PROBE_KEY, None)
        extra["id"] = uuid.uuid4().hex[:8]
        extras.setdefault(anchor, []).append(extra)

    student_cells = [(f"answer cell '{nbf.grade_id(c)}'", c) for c in by_gid.values() if nbf.is_solution(c)]
    student_cells += [("an added cell", c) for cells in extras.values() for c in cells if c.cell_type == "code"]
    for where, cell in student_cells:
        hits = sorted(set(_TAMPERING.findall(cell.source)))
        if hits:
            notes.append(f"{where} uses {', '.join(hits)}; grading does not depend on the kernel, but flagged for a look.")

    graded = copy.deepcopy(released)
    graded.cells = [c for c in extras.get(-1, [])]
    for i, (cell, public) in enumerate(zip(source.cells, released.cells)):
        gid = nbf.grade_id(cell)
        public = copy.deepcopy(public)
        if nbf.is_solution(cell):
            theirs = by_gid.get(gid)
            if theirs is None or theirs.cell_type != cell.cell_type:
                per_exercise[gid] = f"answer cell '{gid}' was missing from the submission"
            else:
                public.source = theirs.source
        elif gid and nbf.is_protected(cell):
            theirs = by_gid.get(gid)
            what = "test cell" if nbf.is_test(cell) else "read-only cell"
            if theirs is None:
                notes.append(f"{what} '{gid}' was deleted; the original was restored.")
            elif theirs.source.strip() not in {released_by_id[gid].source.strip(), cell.source.strip()}:
                notes.append(f"{what} '{gid}' was edited; the original was restored.")
        graded.cells.append(public)
        graded.cells += extras.get(i, [])
    for cell in graded.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    graded.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return graded, notes, per_exercise


def with_probes(graded: NotebookNode, probes: dict[str, Probe], cases: dict[str, list]) -> NotebookNode:
    """``graded`` with a probe cell after each test cell and one per test at the end (a new notebook)."""
    out = copy.deepcopy(graded)
    cells = []
    for cell in out.cells:
        cells.append(cell)
        tid = nbf.grade_id(cell)
        if nbf.is_test(cell) and tid in probes:
            cells.append(_probe_cell(probes[tid], cases[tid], "after"))
    cells += [_probe_cell(probes[tid], cases[tid], "end") for tid in probes]
    out.cells = cells
    return out


def _probe_cell(probe: Probe, cases: list, where: str) -> NotebookNode:
    cell = new_code_cell(probe_source(probe.function, cases, probe.inputs_after))
    cell.metadata[PROBE_KEY] = {"test": probe.test_id, "where": where}
    cell["id"] = uuid.uuid4().hex[:8]
    return cell


def probe_replies(nb: NotebookNode) -> dict[tuple[str, str], object]:
    """What each probe cell displayed: {(test id, 'after' | 'end'): the last probe output}; untrusted data."""
    replies = {}
    for cell in nb.cells:
        tag = cell.get("metadata", {}).get(PROBE_KEY)
        if not tag:
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") in {"display_data", "execute_result"} and MIME in out.get("data", {}):
                replies[(tag["test"], tag["where"])] = out["data"][MIME]
    return replies


def without_probes(nb: NotebookNode, runs: list[CellRun]) -> tuple[NotebookNode, list[CellRun]]:
    keep = [i for i, c in enumerate(nb.cells) if PROBE_KEY not in c.get("metadata", {})]
    out = copy.deepcopy(nb)
    out.cells = [nb.cells[i] for i in keep]
    return out, [runs[i] for i in keep]


@dataclass
class Verdict:
    passed: bool
    reason: str = ""  # why not (or, when passed, a note such as where the answer was found)


def judge_run(probes: dict[str, Probe], cases: dict[str, list], nb: NotebookNode, runs: list[CellRun]) -> dict[str, Verdict]:
    """Each test's verdict from one run: right after the test cell, else right at the end of the notebook."""
    replies = probe_replies(nb)
    stopped = {}  # probe cells that hung or crashed the kernel: why, in words
    for cell, run in zip(nb.cells, runs):
        tag = cell.get("metadata", {}).get(PROBE_KEY)
        if tag and run.status != "ok":
            stopped[(tag["test"], tag["where"])] = f"calling your function failed: {_failure(run)}"
    verdicts = {}
    for tid, probe in probes.items():
        after = stopped.get((tid, "after")) or judge(probe, cases[tid], replies.get((tid, "after")))
        if after is None:
            verdicts[tid] = Verdict(True)
            continue
        end = stopped.get((tid, "end")) or judge(probe, cases[tid], replies.get((tid, "end")))
        verdicts[tid] = (Verdict(True, "your answer was found in a cell after its test; graded as it stood at the end")
                         if end is None else Verdict(False, after))
    return verdicts


def _failure(run: CellRun) -> str:
    return f"{run.ename}: {run.evalue}".strip(": ") if run.evalue else run.ename


def _defined_in_added_cells(graded: NotebookNode, released: NotebookNode, name: str) -> bool:
    """Whether a code cell the student added (not a lab cell) defines ``name``."""
    lab_sources = {c.source.strip() for c in released.cells}
    pattern = re.compile(rf"^\s*(def\s+{re.escape(name)}\s*\(|{re.escape(name)}\s*=)", re.M)
    return any(c.cell_type == "code" and not nbf.meta(c) and c.source.strip() not in lab_sources
               and pattern.search(c.source) for c in graded.cells)


def score(source: NotebookNode, graded: NotebookNode, runs: list[CellRun], notes: list[str],
          per_exercise: dict[str, str], verdicts: dict[str, Verdict],
          functions: dict[str, str] | None = None) -> list[ExerciseGrade]:
    """One grade per exercise from its tests' verdicts (all or nothing per test cell). ``functions``: {test id:
    the function its probe calls}, to flag an answer written in an added cell that the stub then replaced."""
    released_nb = student_version(source)
    released = {nbf.grade_id(c): c.source for c in released_nb.cells if nbf.grade_id(c)}
    index = {nbf.grade_id(c): i for i, c in enumerate(graded.cells) if nbf.grade_id(c)}
    points_of = {nbf.grade_id(c): float(nbf.meta(c).get("points", 0)) for c in source.cells if nbf.is_test(c)}
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
            verdict = verdicts.get(tid, Verdict(False, "not graded"))
            if verdict.passed:
                earned += points_of[tid]
                if verdict.reason:
                    reasons.append(f"{tid}: {verdict.reason}")
            else:
                reasons.append(f"{tid} failed ({verdict.reason})")
        reasons += [n for n in notes if any(f"'{t}'" in n for t in ex.test_ids)]
        moved = sorted({functions[t] for t in ex.test_ids if t in (functions or {})
                        and _defined_in_added_cells(graded, released_nb, functions[t])})
        if unanswered and earned == 0 and moved:
            status, reasons = "failed", [f"an added cell defines {', '.join(moved)}, but the answer cell still holds "
                                         "the stub, which replaced it when it ran: put your answer in the answer cell"]
            notes.append(f"{ex.name}: an answer in an added cell was replaced by the stub (0 points); flagged for a look.")
        elif unanswered and earned == 0:
            status, reasons = "not attempted", ["the answer is still the stub (raise NotImplementedError())"]
        else:
            status = "passed" if earned == ex.points else ("failed" if earned == 0 else "partial")
        grades.append(ExerciseGrade(ex.name, "code", earned, ex.points, status, "; ".join(reasons)))
    return grades


def _draw_cases(probes: dict[str, Probe]) -> dict[str, list]:
    return {tid: p.make_cases(secrets.randbits(64)) for tid, p in probes.items()}


REPO = PACKAGE.parent


def kernel_isolation(hide: list[str], overlays: dict[str, str] | None = None) -> Isolation:
    """What the student's kernel may see: not the instructor source (labs/, the git history), the submissions or
    any grading output; the repository, the Python environment and ``DIALOGSUM_DIR`` read-only; ``overlays``
    mounted over paths."""
    hidden = {str(Path(p).resolve()) for p in hide} | {str(REPO / ".git"), str(REPO / "labs")}
    readonly = {str(REPO), sys.prefix}
    data = os.environ.get("DIALOGSUM_DIR")  # the labs read it; it may sit under /tmp, which the kernel gets its own of
    if data and os.path.isdir(data):
        readonly.add(str(Path(data).resolve()))
    return Isolation(hide=sorted(hidden), overlays=dict(overlays or {}), readonly=sorted(readonly))


def _run(nb: NotebookNode, limits: Limits, student: str, hide: list[str], overlays: dict[str, str] | None = None) -> list[CellRun]:
    with tempfile.TemporaryDirectory(prefix=f"grade-{student}-") as workdir:
        os.chmod(workdir, 0o777)  # the kernel may run as another user
        return run_notebook(nb, limits, cwd=workdir, isolation=kernel_isolation(hide, overlays))


def grade_notebook(source_path: str | Path, submission_path: str | Path, student: str, limits: Limits,
                   feedback_path: str | Path | None = None, hide: list[str] = ()) -> SubmissionResult:
    """Grade one submission in this process (the sandbox kernels run the student's code; this process never does).

    ``hide``: more folders the kernel must not see (the batch's output and private folders); the lab's folder
    and the submission's class folder are always hidden."""
    start = time.perf_counter()
    source_path, submission_path = Path(source_path), Path(submission_path)
    result = SubmissionResult(student, source_path.stem)
    source = nbf.read(source_path)
    probes = load_probes(source, source_path.name)
    try:
        submission = nbf.read(submission_path)
        graded, notes, per_exercise = merge(source, submission)
    except Exception as exc:
        result.error = f"the submission could not be read: {type(exc).__name__}: {exc}"
        result.grades = [ExerciseGrade(e.name, e.kind, 0.0, e.points, "failed", result.error) for e in nbf.exercises(source)]
        return result
    hide = [*hide, str(source_path.resolve().parent), str(submission_path.resolve().parent.parent)]
    cases = _draw_cases(probes)
    probed = with_probes(graded, probes, cases)
    runs = _run(probed, limits, student, hide)
    verdicts = judge_run(probes, cases, probed, runs)
    passed = {tid: probes[tid] for tid, v in verdicts.items() if v.passed and probes[tid].references}
    if passed:  # confirm with the references unavailable, on new inputs
        second_cases = _draw_cases(passed)
        second = with_probes(graded, passed, second_cases)
        references = sorted({r for p in probes.values() for r in p.references})
        with tempfile.TemporaryDirectory(prefix="course-ref-") as poisoned:
            copy_dir = poisoned_copy(references, poisoned)
            os.chmod(poisoned, 0o755)
            second_runs = _run(second, limits, student, hide, {str(PACKAGE): str(copy_dir)})
        for tid, verdict in judge_run(passed, second_cases, second, second_runs).items():
            if not verdict.passed:
                used = ", ".join(passed[tid].references)
                verdicts[tid] = Verdict(False, f"with course_lib's own {used} unavailable, your answer fails "
                                               f"({verdict.reason}): write it yourself instead of calling the reference")
    shown, shown_runs = without_probes(probed, runs)
    result.grades = score(source, shown, shown_runs, notes, per_exercise, verdicts,
                          {tid: p.function for tid, p in probes.items()})
    result.failed_cells = [f"cell {r.index}: {_failure(r)}" for r, c in zip(shown_runs, shown.cells)
                           if r.status != "ok" and not nbf.meta(c)]
    result.notes = notes
    result.seconds = time.perf_counter() - start
    if feedback_path is not None:
        try:
            write_feedback(shown, shown_runs, result, feedback_path, instructor=source, verdicts=verdicts)
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
    parser.add_argument("--hide", action="append", default=[], help="a folder the student's kernel must not see (repeatable)")
    args = parser.parse_args(argv)
    result = grade_notebook(args.source, args.submission, args.student, Limits(**json.loads(args.limits)), args.feedback,
                            hide=[*args.hide, str(Path(args.result).resolve().parent)])
    write_result(result, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
