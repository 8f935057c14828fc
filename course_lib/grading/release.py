"""Student versions of the labs, made with nbgrader's own preprocessors.

Solutions become ``raise NotImplementedError()`` stubs, hidden tests and mark
schemes disappear, outputs are cleared, test and read-only cells are locked in
the Jupyter UI, and nbgrader checksums let ``validate`` tell a student which
protected cell they changed. The result is checked line by line for anything of
the instructor version before it is written.
"""

from __future__ import annotations

import copy
from pathlib import Path

from nbformat import NotebookNode

from . import notebook as nbf

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


class LeakError(RuntimeError):
    """The student version still holds a line of a solution, hidden test or mark scheme."""


STUBS = {"YOUR ANSWER HERE", "# YOUR CODE HERE", "raise NotImplementedError()"}  # what nbgrader puts in


def _is_stub_line(text: str) -> bool:
    return text in STUBS or text.startswith("raise NotImplementedError(\"Exercise '")


def _distinctive(line: str) -> bool:
    """A line worth searching for: long enough not to match by chance (not `return x` or `pass`), not a stub."""
    text = line.strip()
    return len(text) >= 12 and not text.startswith("#") and not _is_stub_line(text)


def question_in_answer_cells(nb: NotebookNode) -> list[str]:
    """Written-answer cells that would lose their question: nbgrader replaces such a cell entirely.

    A markdown answer cell without a '### BEGIN SOLUTION' region becomes 'YOUR ANSWER HERE' in the
    release; if its text (mark scheme aside) holds a heading or a question, students never see it.
    """
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown" or not nbf.is_solution(cell) or nbf.SOLUTION_BEGIN in cell.source:
            continue
        lines = _without_secrets_text(cell.source).split("\n")
        if any(line.lstrip().startswith("#") or line.rstrip().endswith("?") or "Exercise" in line for line in lines):
            found.append(f"written answer cell '{nbf.grade_id(cell)}' holds its question, which the release replaces with "
                         "'YOUR ANSWER HERE': move the question into a markdown cell of its own just above it")
    return found


def _without_secrets_text(source: str) -> str:
    kept, inside = [], False
    for line in source.split("\n"):
        if nbf.SCHEME_BEGIN in line:
            inside = True
        elif nbf.SCHEME_END in line:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


def secrets_of(instructor: NotebookNode) -> list[str]:
    """The distinctive lines of ``instructor``'s solutions, hidden tests and mark schemes, stripped.

    A line also present in the instructor version outside every secret region (an import
    the stub keeps, say) is public and not counted.
    """
    public = {line.strip() for cell in _without_secrets(instructor).cells for line in cell.source.split("\n")}
    return sorted({line.strip() for line in nbf.secret_lines(instructor) if _distinctive(line)} - public)


def leaks(instructor: NotebookNode, student: NotebookNode) -> list[str]:
    """Secret lines of ``instructor`` (``secrets_of``) found as whole lines in ``student``, and secret markers."""
    student_lines = set()
    for cell in student.cells:
        student_lines.update(line.strip() for line in cell.source.split("\n"))
        for out in cell.get("outputs", []):
            student_lines.update(line.strip() for line in str(out.get("text", "")).split("\n"))
    markers = {f"### {nbf.SOLUTION_BEGIN}", f"### {nbf.HIDDEN_BEGIN}", nbf.SCHEME_BEGIN}
    found = sorted(set(secrets_of(instructor)) & student_lines)
    found += [m for m in markers if any(m in line for line in student_lines)]
    return found


def _without_secrets(nb: NotebookNode) -> NotebookNode:
    """The instructor notebook with every secret region (and whole-cell answers) removed."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if nbf.is_solution(cell) and nbf.SOLUTION_BEGIN not in cell.source:
            cell.source = ""
            continue
        kept, inside = [], False
        for line in cell.source.split("\n"):
            if any(b in line for b in (nbf.SOLUTION_BEGIN, nbf.HIDDEN_BEGIN, nbf.SCHEME_BEGIN)):
                inside = True
            elif any(e in line for e in (nbf.SOLUTION_END, nbf.HIDDEN_END, nbf.SCHEME_END)):
                inside = False
            elif not inside:
                kept.append(line)
        cell.source = "\n".join(kept)
    return out


UNANSWERED = ("Exercise '{gid}' is not answered yet: replace this line with your code (the exercise text above says "
              "what to write), then run the check cell below. The rest of the lab runs without it; the grader gives this "
              "exercise 0 until it is answered.")


class RunsUnanswered:
    """Release step: a lab run before every exercise is answered still reaches its last cell.

    Each stub names its exercise in its error, and every exercise cell (answer and checks) is tagged
    ``raises-exception``, which JupyterLab's Run All, papermill and nbclient honour: the error is shown
    and execution goes on. Demonstrations never use a student's answer, so nothing after it breaks.
    The grader reads each cell's own status, so tags change no grade.
    """

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            if cell.cell_type != "code" or not (nbf.is_solution(cell) or nbf.meta(cell).get("grade")):
                continue
            if nbf.is_solution(cell):
                gid = nbf.grade_id(cell)
                cell.source = cell.source.replace("raise NotImplementedError()",
                                                  f"raise NotImplementedError({UNANSWERED.format(gid=gid)!r})")
            tags = cell.metadata.setdefault("tags", [])
            if "raises-exception" not in tags:
                tags.append("raises-exception")
        return nb, resources


def student_version(nb: NotebookNode, name: str = "notebook") -> NotebookNode:
    """The student version of an instructor notebook (a new object; ``nb`` is untouched)."""
    from nbgrader.preprocessors import (
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    nbf.check_authoring(nb, name)
    out = copy.deepcopy(nb)
    out.metadata["kernelspec"] = dict(KERNELSPEC)
    resources: dict = {}
    for step in (ClearSolutions(), ClearHiddenTests(), ClearMarkScheme(), ClearOutput(), RunsUnanswered(), LockCells(),
                 ComputeChecksums()):
        try:
            out, resources = step.preprocess(out, resources)
        except Exception as exc:  # nbgrader raises RuntimeError/ValidationError with a terse message
            raise nbf.AuthoringError(f"{name}: nbgrader's {type(step).__name__} failed: {exc}") from None
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.execution_count = None
    found = leaks(nb, out)
    if found:
        raise LeakError(f"{name}: the student version still contains instructor lines {found[:5]}; fix the markers in the lab.")
    return out


def release_lab(source: str | Path, out_dir: str | Path) -> Path:
    """Write the student version of one lab to ``out_dir/<same name>``."""
    source = Path(source)
    nb = nbf.read(source)
    return nbf.write_atomic(student_version(nb, source.name), Path(out_dir) / source.name)


def release_labs(sources: list[Path], out_dir: str | Path) -> list[Path]:
    """Release every lab in ``sources``; stop at the first authoring problem, naming the lab."""
    if not sources:
        raise FileNotFoundError("No lab notebooks to release: expected labs/NN_name.ipynb files.")
    return [release_lab(path, out_dir) for path in sources]
