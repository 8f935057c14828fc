"""Exercises as nbgrader marks them in a lab: find them, check how they are authored.

A code exercise is a solution cell (``solution: true``) followed by one or more
locked test cells (``grade: true``, with ``points``); a written exercise is one
cell that is both ``solution`` and ``grade`` (graded by hand). The cell metadata
schema is nbgrader's (version 3), validated with nbgrader's own validator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ..atomic import atomic_write

SOLUTION_BEGIN, SOLUTION_END = "BEGIN SOLUTION", "END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
SCHEME_BEGIN, SCHEME_END = "BEGIN MARK SCHEME", "END MARK SCHEME"


class AuthoringError(ValueError):
    """A lab's exercise markup that nbgrader (or this course) cannot grade; the message says how to fix it."""


@dataclass
class Exercise:
    name: str  # grade_id of the solution cell (or of the written answer)
    kind: str  # 'code' (autograded by its test cells) or 'written' (graded by hand)
    points: float  # sum of the points of its graded cells
    solution_id: str | None  # grade_id of the cell the student writes in
    test_ids: list[str] = field(default_factory=list)  # grade_ids of the autograded test cells


def meta(cell: NotebookNode) -> dict:
    """The cell's nbgrader metadata ({} for an ordinary cell)."""
    m = cell.get("metadata", {}).get("nbgrader") if isinstance(cell.get("metadata"), dict) else None
    return m if isinstance(m, dict) else {}  # a submission may carry anything here


def grade_id(cell: NotebookNode) -> str | None:
    """The cell's nbgrader id; None when it has none or it is not text (a submission may carry anything)."""
    gid = meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def hidden_source(cell: NotebookNode) -> str:
    """The text of a test cell's hidden-test regions (the probe the grader runs), markers excluded."""
    return "\n".join("\n".join(region) for region in _regions(cell.source, HIDDEN_BEGIN, HIDDEN_END))


def is_solution(cell: NotebookNode) -> bool:
    return bool(meta(cell).get("solution"))


def is_grade(cell: NotebookNode) -> bool:
    return bool(meta(cell).get("grade"))


def is_test(cell: NotebookNode) -> bool:
    """An autograded test cell: a graded code cell that is not itself an answer."""
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


def is_protected(cell: NotebookNode) -> bool:
    """Cells a student may not change: test cells and read-only (locked) cells."""
    m = meta(cell)
    return bool(m) and not m.get("solution") and (m.get("grade") or m.get("locked"))


def read(path: str | Path) -> NotebookNode:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such notebook.")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:
        raise AuthoringError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc}).") from None


def write_atomic(nb: NotebookNode, path: str | Path) -> Path:
    """Write a notebook via a temp file in the same folder and ``os.replace``."""
    return atomic_write(path, lambda fh: nbformat.write(nb, fh))


def exercises(nb: NotebookNode) -> list[Exercise]:
    """The lab's exercises in order; each test cell belongs to the solution cell before it."""
    found: list[Exercise] = []
    current: Exercise | None = None
    for cell in nb.cells:
        m = meta(cell)
        if not m:
            continue
        if m.get("solution") and m.get("grade"):
            found.append(Exercise(m["grade_id"], "written", float(m.get("points", 0)), m["grade_id"]))
            current = None
        elif m.get("solution"):
            current = Exercise(m["grade_id"], "code", 0.0, m["grade_id"])
            found.append(current)
        elif is_test(cell):
            if current is None:  # a test with no answer cell before it (e.g. tests a whole section)
                current = Exercise(m["grade_id"], "code", 0.0, None)
                found.append(current)
            current.test_ids.append(m["grade_id"])
            current.points += float(m.get("points", 0))
        elif m.get("grade") or m.get("task"):
            found.append(Exercise(m["grade_id"], "written", float(m.get("points", 0)), None))
    return found


def _regions(source: str, begin: str, end: str) -> list[list[str]]:
    """Lines inside each begin/end region of ``source`` (markers excluded)."""
    regions, inside = [], None
    for line in source.split("\n"):
        if begin in line:
            inside = []
        elif end in line and inside is not None:
            regions.append(inside)
            inside = None
        elif inside is not None:
            inside.append(line)
    return regions


def secret_lines(nb: NotebookNode) -> list[str]:
    """Lines of solutions, hidden tests and mark schemes: none may reach a student's copy."""
    lines = []
    for cell in nb.cells:
        for begin, end in ((SOLUTION_BEGIN, SOLUTION_END), (HIDDEN_BEGIN, HIDDEN_END), (SCHEME_BEGIN, SCHEME_END)):
            for region in _regions(cell.source, begin, end):
                lines += region
        if is_solution(cell) and SOLUTION_BEGIN not in cell.source:  # the whole cell is the answer
            lines += cell.source.split("\n")
    return lines


def check_authoring(nb: NotebookNode, name: str = "notebook") -> list[Exercise]:
    """Validate the exercise markup (nbgrader's schema plus this course's rules); return the exercises."""
    from nbgrader.nbgraderformat import MetadataValidator, ValidationError

    try:
        MetadataValidator().validate_nb(nb)
    except ValidationError as exc:
        raise AuthoringError(f"{name}: nbgrader metadata is invalid: {exc}. See CONTRIBUTING.md, 'Exercises'.") from None
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        m, where = meta(cell), f"{name}, cell {index}"
        gid = m.get("grade_id")
        if gid is not None and (m.get("solution") or m.get("grade") or m.get("locked")):
            if gid in seen:
                raise AuthoringError(f"{where}: grade_id {gid!r} is used twice; grade_ids must be unique within a lab.")
            seen.add(gid)
        src = cell.source
        for begin, end, ok, what in ((SOLUTION_BEGIN, SOLUTION_END, is_solution(cell), "solution: true"),
                                     (HIDDEN_BEGIN, HIDDEN_END, is_test(cell), "grade: true (a test cell)")):
            if src.count(begin) != src.count(end):
                raise AuthoringError(f"{where} ({gid or 'no grade_id'}): '### {begin}' and '### {end}' do not pair up.")
            if begin in src and not ok:
                raise AuthoringError(f"{where}: has '### {begin}' but its metadata is not {what}; it would leak into the release.")
        if is_test(cell) and not m.get("locked"):
            raise AuthoringError(f"{where}: test cell {gid!r} must be locked (\"locked\": true).")
        if is_test(cell) and float(m.get("points", 0)) <= 0:
            raise AuthoringError(f"{where}: test cell {gid!r} has no points; give it \"points\": N > 0.")
    found = exercises(nb)
    return found
