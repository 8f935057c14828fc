"""Per-student feedback: the graded notebook as HTML, a score table on top, hidden tests kept hidden.

Test cells show their visible part and a one-line verdict (points, and the
exception's name and message when they failed), never a traceback, since
tracebacks quote the hidden lines. Student outputs and markdown go through
nbconvert's ``SanitizeHTML`` (no script reaches the page) and long outputs are
cut with nbgrader's ``LimitOutput``.
"""

from __future__ import annotations

import copy
import html
from pathlib import Path

from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell, new_output

from ..atomic import atomic_write_text
from . import notebook as nbf
from .release import leaks


def _cell_text(text: str) -> str:
    return html.escape(text.replace("|", "/").replace("\n", " "), quote=False)


def summary_markdown(result) -> str:
    """The score table shown at the top of the feedback."""
    manual = sum(g.max_points for g in result.grades if g.points is None)
    lines = [f"# Feedback: {_cell_text(result.lab)}, {_cell_text(result.student)}", "",
             f"**Autograded: {result.points:g} / {result.max_points - manual:g} points**"
             + (f"; {manual:g} more points are graded by hand." if manual else "."), "",
             "| exercise | points | status | why |", "|---|---|---|---|"]
    for g in result.grades:
        pts = "by hand" if g.points is None else f"{g.points:g} / {g.max_points:g}"
        lines.append(f"| {g.exercise} | {pts} | {g.status} | {_cell_text(g.reason) or '-'} |")
    if result.notes:
        lines += ["", "**Changes found in your file** (the lab's original cells were used):", ""]
        lines += [f"- {_cell_text(n)}" for n in result.notes]
    if result.failed_cells:
        lines += ["", "**Other cells that failed** (later cells may have failed because of them):", ""]
        lines += [f"- {_cell_text(c)}" for c in result.failed_cells]
    if result.error:
        lines += ["", f"**Grading problem:** {_cell_text(result.error)}"]
    return "\n".join(lines)


def _visible_part(source: str) -> str:
    kept, inside, hidden = [], False, False
    for line in source.split("\n"):
        if nbf.HIDDEN_BEGIN in line:
            inside = hidden = True
        elif nbf.HIDDEN_END in line:
            inside = False
        elif not inside:
            kept.append(line)
    if hidden:
        kept.append("# (hidden tests, not shown)")
    return "\n".join(kept)


def feedback_notebook(graded: NotebookNode, runs: list, result) -> NotebookNode:
    """The notebook a student may see: verdicts instead of test outputs, hidden tests removed."""
    from nbconvert.preprocessors.sanitize import SanitizeHTML
    from nbgrader.preprocessors import LimitOutput

    fb = copy.deepcopy(graded)
    for i, cell in enumerate(fb.cells):
        if not nbf.is_test(cell):
            continue
        cell.source = _visible_part(cell.source)
        points = float(nbf.meta(cell).get("points", 0))
        run = runs[i]
        verdict = (f"\u2713 passed ({points:g} / {points:g} points)" if run.status == "ok"
                   else f"\u2717 failed (0 / {points:g} points): {run.ename}: {run.evalue}".rstrip(": "))
        cell.outputs = [new_output("stream", name="stdout", text=verdict + "\n")]
    fb, _ = LimitOutput().preprocess(fb, {})
    fb, _ = SanitizeHTML().preprocess(fb, {})  # student HTML/JS outputs and raw HTML in markdown: escaped or dropped
    fb.cells.insert(0, new_markdown_cell(summary_markdown(result)))
    return fb


def write_feedback(graded: NotebookNode, runs: list, result, path: str | Path) -> Path:
    """Write the feedback HTML atomically; refuse if a test cell would still show a hidden line."""
    from nbconvert import HTMLExporter

    fb = feedback_notebook(graded, runs, result)
    tests_only = copy.deepcopy(graded)
    tests_only.cells = [c for c in tests_only.cells if nbf.is_test(c)]
    shown = copy.deepcopy(fb)
    shown.cells = [c for c in shown.cells if nbf.is_test(c)]
    found = leaks(tests_only, shown)
    if found:
        raise RuntimeError(f"feedback for {result.student} would reveal hidden tests {found[:3]}; not written.")
    body, _ = HTMLExporter().from_notebook_node(fb)
    return atomic_write_text(path, body)
