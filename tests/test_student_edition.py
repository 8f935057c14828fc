"""The student edition (student/): exactly what the release step makes from labs/, and it runs unanswered."""

import json

import nbformat
import pytest

from course_lib import labs
from course_lib.grading import notebook as nbf
from course_lib.grading.release import student_version

LABS = labs.discover()
STUDENT = labs.REPO / "student"


def _as_json(nb) -> dict:
    return json.loads(nbformat.writes(nb))


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_student_edition_is_what_the_release_step_makes(path):
    committed = STUDENT / path.name
    assert committed.exists(), f"student/{path.name} is missing: run `make release` and commit student/"
    fresh = student_version(nbf.read(path), path.name)
    assert _as_json(nbf.read(committed)) == _as_json(fresh), (
        f"student/{path.name} is stale: the lab changed since the last release. Run `make release` and commit student/.")


def test_student_edition_holds_no_extra_notebooks():
    assert sorted(p.name for p in STUDENT.glob("*.ipynb")) == sorted(p.name for p in LABS)


@pytest.mark.lab
@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_student_notebook_runs_to_the_end_unanswered(path, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    student = STUDENT / path.name
    result = labs.run_lab(student, tmp_path, smoke=True, timeout=600, html=False)
    assert result.status == "ok", f"student/{path.name} {result.status}:\n{result.error}"
    executed = nbformat.read(tmp_path / path.name, as_version=4)
    assert "environment" not in result.error
    text = "\n".join(str(o.get("evalue", "")) + "".join(o.get("text", "")) for c in executed.cells for o in c.get("outputs", []))
    for ex in nbf.exercises(nbf.read(path)):
        if ex.kind == "code":
            assert f"Exercise '{ex.solution_id}' is not answered yet" in text, f"{ex.name}: no message naming it"
    last = [c for c in executed.cells if c.cell_type == "code" and c.source.strip()][-1]
    assert last.get("execution_count") is not None, "the last cell did not run"
