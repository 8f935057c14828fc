"""Per-student feedback: the graded notebook as HTML, a score table on top, hidden tests kept hidden.

Test cells show their visible part and a one-line verdict (points, and the
exception's name and message when they failed), never a traceback, since
tracebacks quote the hidden lines. Every output of every cell is searched for
text of the hidden tests, solutions and mark schemes (anywhere in it, not only
as a whole line) and removed when it holds some; each output is capped in bytes,
and long ones in lines (nbgrader's ``LimitOutput``). The score table is built
first and then sanitised with everything else (nbconvert's ``SanitizeHTML``);
markdown links to scripts and remote images in a student's text are removed.
"""

from __future__ import annotations

import copy
import html
import re
from pathlib import Path

from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell, new_output

from ..atomic import atomic_write_text
from . import notebook as nbf
from .release import leaks, secrets_of

OUTPUT_BYTES = 20_000  # per output: one runaway print must not make a 100 MB page
REDACTED = ("[output removed from the feedback: it quoted text of the hidden tests, a solution or the mark scheme]\n")
_UNSAFE_LINK = re.compile(r"\]\(\s*<?\s*(?:javascript|vbscript|data|file):[^)]*\)", re.IGNORECASE)
_REMOTE_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?\s*(?:https?:)?//[^)]*\)|<img\b[^>]*>", re.IGNORECASE)


def _cell_text(text: str) -> str:
    """A student-supplied string as inert table text: no HTML, no markdown link or image syntax."""
    text = html.escape(text.replace("|", "/").replace("\n", " "), quote=False)
    return re.sub(r"([\[\]()!`*_])", r"\\\1", text)


def _output_text(out) -> str:
    parts = [out.get("text", ""), out.get("evalue", ""), *out.get("traceback", [])]
    parts += [v for v in out.get("data", {}).values() if isinstance(v, str)]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def _guard_outputs(fb: NotebookNode, secrets: list[str]) -> int:
    """Remove outputs that quote a secret and cap the rest in bytes, in place; return how many were removed."""
    removed = 0
    for cell in fb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            if any(s in _output_text(out) for s in secrets):
                removed += 1
                out = new_output("stream", name="stdout", text=REDACTED)
            for key in ("text", "evalue"):
                if isinstance(out.get(key), str) and len(out[key].encode()) > OUTPUT_BYTES:
                    out[key] = out[key][:OUTPUT_BYTES] + f"\n[... {len(out[key]) - OUTPUT_BYTES:,} more characters cut]\n"
            if "traceback" in out:
                out["traceback"] = [line[:OUTPUT_BYTES] for line in out["traceback"][:50]]
            for mime, value in list(out.get("data", {}).items()):
                if isinstance(value, str) and len(value.encode()) > OUTPUT_BYTES * (50 if mime.startswith("image/") else 1):
                    out["data"] = {"text/plain": f"[{mime} output of {len(value):,} characters cut]"}
                    break
            outputs.append(out)
        if "outputs" in cell:
            cell.outputs = outputs
        if cell.cell_type == "markdown":  # a student's markdown: no script links, no remote images (trackers)
            cell.source = _REMOTE_IMAGE.sub("[image removed]", _UNSAFE_LINK.sub("](#link-removed)", cell.source))
    return removed


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


def feedback_notebook(graded: NotebookNode, runs: list, result, secrets: list[str] = (),
                      verdicts: dict | None = None) -> NotebookNode:
    """The notebook a student may see: verdicts instead of test outputs, hidden tests removed, no output quoting
    a ``secret`` line, every output capped in bytes, everything sanitised (the score table too).

    ``verdicts``: {test id: Verdict} decided by the grader; without it a test cell's own run is shown."""
    from nbconvert.preprocessors.sanitize import SanitizeHTML
    from nbgrader.preprocessors import LimitOutput

    fb = copy.deepcopy(graded)
    for i, cell in enumerate(fb.cells):
        if not nbf.is_test(cell):
            continue
        cell.source = _visible_part(cell.source)
        if verdicts is not None and "hidden tests, not shown" not in cell.source:  # graded by the grader's probe
            cell.source = cell.source.rstrip("\n") + "\n# (hidden tests, not shown)"
        points = float(nbf.meta(cell).get("points", 0))
        run = runs[i]
        if verdicts is not None:
            decided = verdicts.get(nbf.grade_id(cell))
            passed, message = (decided.passed, decided.reason) if decided is not None else (False, "not graded")
        else:
            passed, message = run.status == "ok", f"{run.ename}: {run.evalue}"
        if any(s in message for s in secrets):
            message = "(message hidden: it quoted a hidden test)"
        verdict = (f"\u2713 passed ({points:g} / {points:g} points)" if passed
                   else f"\u2717 failed (0 / {points:g} points): {message}".rstrip(": "))
        cell.outputs = [new_output("stream", name="stdout", text=verdict + "\n")]
    removed = _guard_outputs(fb, list(secrets))
    fb, _ = LimitOutput().preprocess(fb, {})
    summary = summary_markdown(result)
    if removed:
        summary += f"\n\n{removed} output(s) were removed from this page: they quoted hidden test or solution text."
    fb.cells.insert(0, new_markdown_cell(summary))
    fb, _ = SanitizeHTML().preprocess(fb, {})  # student HTML/JS outputs and raw HTML in markdown: escaped or dropped
    return fb


def write_feedback(graded: NotebookNode, runs: list, result, path: str | Path,
                   instructor: NotebookNode | None = None, verdicts: dict | None = None) -> Path:
    """Write the feedback HTML atomically; refuse if a test cell would still show a hidden line.

    ``instructor``: the lab's instructor version, whose solution, hidden-test and mark-scheme lines no output
    of the page may quote (without it, only the hidden tests of ``graded`` are searched for)."""
    from nbconvert import HTMLExporter

    fb = feedback_notebook(graded, runs, result, secrets_of(instructor if instructor is not None else graded), verdicts)
    tests_only = copy.deepcopy(graded)
    tests_only.cells = [c for c in tests_only.cells if nbf.is_test(c)]
    shown = copy.deepcopy(fb)
    shown.cells = [c for c in shown.cells if nbf.is_test(c)]
    found = leaks(tests_only, shown)
    if found:
        raise RuntimeError(f"feedback for {result.student} would reveal hidden tests {found[:3]}; not written.")
    body, _ = HTMLExporter().from_notebook_node(fb)
    return atomic_write_text(path, body)
