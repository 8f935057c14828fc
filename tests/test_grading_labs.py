"""Every lab with exercises: its release hides everything of the instructor version; grading it end to end
gives the instructor version full points and the released version zero, with every other cell still running.

A lab that lands later is covered automatically.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from course_lib import labs
from course_lib.grading import notebook as nbf
from course_lib.grading.batch import GradingConfig, grade_submissions
from course_lib.grading.execute import Limits
from course_lib.grading.probe import load_probes
from course_lib.grading.references import poisoned_copy
from course_lib.grading.release import question_in_answer_cells, release_labs

ALL_LABS = labs.discover()
WITH_EXERCISES = [p for p in ALL_LABS if nbf.exercises(nbf.read(p))]


def _secret_text(source: str) -> list[str]:
    """Lines between BEGIN/END SOLUTION, HIDDEN TESTS or MARK SCHEME markers (an independent re-implementation)."""
    found = []
    for kind in ("SOLUTION", "HIDDEN TESTS", "MARK SCHEME"):
        for block in re.findall(rf"BEGIN {kind}[^\n]*\n(.*?)\n[^\n]*END {kind}", source, flags=re.S):
            found += [line.strip() for line in block.split("\n")]
    return found


@pytest.mark.parametrize("path", ALL_LABS, ids=[p.stem for p in ALL_LABS])
def test_release_holds_nothing_of_the_instructor_version(path, tmp_path):
    released_path = release_labs([path], tmp_path)[0]
    released = json.loads(released_path.read_text(encoding="utf-8"))
    instructor = nbf.read(path)
    public = "\n".join(c.source for c in instructor.cells if not nbf.is_solution(c))
    public_lines = {line.strip() for line in re.sub(r"BEGIN HIDDEN TESTS.*?END HIDDEN TESTS", "", public, flags=re.S).split("\n")}
    student_lines = {line.strip() for cell in released["cells"] for line in "".join(cell["source"]).split("\n")}
    secrets = {s for c in instructor.cells for s in _secret_text(c.source) if len(s) >= 12 and not s.startswith("#")}
    for cell in instructor.cells:
        if nbf.is_solution(cell) and "BEGIN SOLUTION" not in cell.source:  # a whole-cell answer (written answers)
            secrets |= {s.strip() for s in cell.source.split("\n") if len(s.strip()) >= 12 and s.strip() != "YOUR ANSWER HERE"}
    leaked = sorted((secrets - public_lines) & student_lines)
    assert not leaked, f"{path.name}: instructor lines in the release: {leaked[:5]}"
    text = json.dumps(released)
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME"):
        assert marker not in text, f"{path.name}: marker {marker!r} in the release"
    assert all(not c.get("outputs") for c in released["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=[p.stem for p in WITH_EXERCISES])
def test_written_questions_survive_the_release(path):
    """nbgrader replaces a whole written-answer cell: the question must sit in a cell of its own."""
    lost = question_in_answer_cells(nbf.read(path))
    assert not lost, f"{path.name}: {lost}"


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=[p.stem for p in WITH_EXERCISES])
def test_every_test_cell_has_a_probe_whose_references_exist(path, tmp_path):
    """Each test cell's hidden region is a probe the grader can load, draw cases from, and whose references name
    real course_lib functions (poisoned_copy raises for a name that matches nothing)."""
    probes = load_probes(nbf.read(path), path.name)
    tests = [t for e in nbf.exercises(nbf.read(path)) for t in e.test_ids]
    assert sorted(probes) == sorted(tests)
    for probe in probes.values():
        cases = probe.make_cases(12345)
        assert cases and all(isinstance(c, (tuple, dict)) for c in cases)
        assert probe.references, f"{path.name} {probe.test_id}: name the course_lib reference an answer may not call"
    copy = poisoned_copy(sorted({r for p in probes.values() for r in p.references}), tmp_path)
    assert (copy / "__init__.py").exists()


@pytest.mark.slow
@pytest.mark.parametrize("path", WITH_EXERCISES, ids=[p.stem for p in WITH_EXERCISES])
def test_instructor_version_full_points_release_zero(path, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lab_dir, subs = tmp_path / "labs", tmp_path / "submissions"
    lab_dir.mkdir()
    shutil.copy(path, lab_dir / path.name)
    (subs / "instructor").mkdir(parents=True)
    shutil.copy(path, subs / "instructor" / path.name)
    release_labs([path], subs / "released")
    config = GradingConfig(labs_dir=lab_dir, out_dir=tmp_path / "grades", workers=2,
                           limits=Limits(cell_timeout=300, time_limit=900, memory_mb=6144, threads=1, smoke=True))
    results, _ = grade_submissions(subs, config, progress=False)
    by_student = {r.student: r for r in results}
    instructor, released = by_student["instructor"], by_student["released"]
    for g in instructor.grades:
        if g.kind == "code":
            assert g.points == g.max_points, f"{path.name} instructor version: {g}"
        else:
            assert g.status == "manual", g
    assert not instructor.failed_cells and not instructor.error, (instructor.failed_cells, instructor.error)
    for g in released.grades:
        assert g.points == 0 and g.status == "not attempted", f"{path.name} released version: {g}"
    assert not released.failed_cells, f"{path.name}: cells outside the exercises fail in the student version: {released.failed_cells}"
    feedback = (tmp_path / "grades" / "feedback" / "released" / f"{path.stem}.html").read_text(encoding="utf-8")
    assert "not attempted" in feedback
