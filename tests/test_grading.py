"""Release, autograde and validate, end to end on a fixture lab with real kernels.

Submissions are generated here from tests/fixtures/grading_lab.ipynb: a correct
one, partly correct ones, a syntax error, and one per adversarial case of
issue 9 (infinite loop, unbounded allocation, os.abort, sys.exit/os._exit,
deleted or edited test cell, edited read-only cell, fake "passed" output).
"""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from course_lib.grading import notebook as nbf
from course_lib.grading.batch import GradingConfig, find_jobs, grade_submissions
from course_lib.grading.execute import Limits
from course_lib.grading.release import student_version
from course_lib.grading.sandbox import isolation_mode

FIXTURE = Path(__file__).parent / "fixtures" / "grading_lab.ipynb"
LAB = "01_fixture"
GOOD_SOFTMAX = "def softmax(x, axis=-1):\n    z = x - x.max(axis=axis, keepdims=True)\n    return np.exp(z) / np.exp(z).sum(axis=axis, keepdims=True)"
GOOD_MASK = "def causal_mask(T):\n    return np.tril(np.ones((T, T), dtype=bool))"
NAIVE_SOFTMAX = "def softmax(x, axis=-1):\n    return np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True)"
WRONG_SOFTMAX = "def softmax(x, axis=-1):\n    return np.zeros_like(x)"


def _released() -> nbformat.NotebookNode:
    return student_version(nbf.read(FIXTURE))


def _cell(nb, gid):
    return next(c for c in nb.cells if nbf.grade_id(c) == gid)


def _answer(softmax=GOOD_SOFTMAX, mask=GOOD_MASK, written="Exp overflows; softmax is shift invariant.", edit=None):
    nb = _released()
    _cell(nb, "ex_softmax").source = softmax
    _cell(nb, "ex_mask").source = mask
    if written is not None:
        _cell(nb, "written_softmax_shift").source = written
    if edit is not None:
        edit(nb)
    return nb


def _delete_test(nb):
    nb.cells = [c for c in nb.cells if nbf.grade_id(c) != "ex_softmax_tests"]


def _edit_readonly(nb):
    _cell(nb, "tolerance").source = "TOLERANCE = 1e9"


def _fake_output(nb):
    test = _cell(nb, "ex_softmax_tests")
    test.outputs = [nbformat.v4.new_output("stream", name="stdout", text="All tests passed! 2/2 points\n")]
    test.metadata["nbgrader"]["points"] = 100
    bonus = new_code_cell('print("bonus tests passed")')
    bonus.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "locked": True, "points": 50, "schema_version": 3,
                                  "solution": False, "task": False}
    nb.cells.insert(nb.cells.index(test) + 1, bonus)
    nb.cells.append(new_code_cell('from IPython.display import HTML, display\ndisplay(HTML("<script>alert(1)</script><b>hi</b>"))'))


def _helper_cell(nb):
    answer = _cell(nb, "ex_softmax")
    nb.cells.insert(nb.cells.index(answer), new_code_cell("def shift_by_max(x, axis):\n    return x - x.max(axis=axis, keepdims=True)"))
    answer.source = "def softmax(x, axis=-1):\n    e = np.exp(shift_by_max(x, axis))\n    return e / e.sum(axis=axis, keepdims=True)"


LOOP = "def softmax(x, axis=-1):\n    while True:\n        try:\n            pass\n        except BaseException:\n            pass"
HIDE_TRACEBACKS = "get_ipython().showtraceback = lambda *a, **k: None\n" + WRONG_SOFTMAX.replace("return", 'print("\\u2713 all tests passed")\n    return')

HALF_MASK = "def causal_mask(T):\n    return np.tril(np.ones((T, T), dtype=bool)) if T > 1 else np.zeros((1, 1), bool)"
EXIT_MASK = "import sys\n" + GOOD_MASK.replace("    return", "    sys.exit(0)\n    return")
HOG_MASK = "def causal_mask(T):\n    hog = []\n    while True:\n        hog.append(bytearray(50_000_000))"
ABORT_SOFTMAX = "import os\n" + GOOD_SOFTMAX.replace("    z =", "    os.abort()\n    z =")
HARD_EXIT_MASK = "import os\n" + GOOD_MASK.replace("    return", "    os._exit(1)\n    return")


def _tamper(nb):  # delete one test cell, edit another, loosen the read-only tolerance
    _delete_test(nb)
    _cell(nb, "ex_mask_tests").source = 'print("all tests passed")'
    _edit_readonly(nb)


# student -> (notebook, expected points for ex_softmax and ex_mask, words expected in the reasons).
# Cases that hit different exercises share a submission to keep the batch short.
SUBMISSIONS = {
    "correct": (_answer(), 2, 2, []),
    "untouched": (_released(), 0, 0, ["still the stub"]),
    "partial": (_answer(NAIVE_SOFTMAX, HALF_MASK), 0, 1, ["NaN", "ex_mask_tests_edge failed"]),
    "syntax_and_exit": (_answer("def softmax(x, axis=-1)\n    return x", EXIT_MASK), 0, 0, ["SyntaxError", "SystemExit"]),
    "loop_and_hog": (_answer(LOOP, HOG_MASK), 0, 0, ["TimeLimitExceeded", ("MemoryError", "SIGKILL")]),
    "abort_and_os_exit": (_answer(ABORT_SOFTMAX, HARD_EXIT_MASK), 0, 0, ["SIGABRT", "exited with code 1"]),
    "tampered": (_answer(WRONG_SOFTMAX, "def causal_mask(T):\n    return None", edit=_tamper), 0, 0,
                 ["'ex_softmax_tests' was deleted", "'ex_mask_tests' was edited", "read-only cell 'tolerance' was edited"]),
    "fake_output": (_answer(HIDE_TRACEBACKS, edit=_fake_output), 0, 2, ["values differ"]),
    "helper_cell": (_answer(edit=_helper_cell), 2, 2, []),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    labs = root / "labs"
    labs.mkdir()
    shutil.copy(FIXTURE, labs / f"{LAB}.ipynb")
    subs = root / "submissions"
    for student, (nb, *_rest) in SUBMISSIONS.items():
        nbf.write_atomic(nb, subs / student / f"{LAB}.ipynb")
    (subs / "garbled").mkdir()
    (subs / "garbled" / f"{LAB}.ipynb").write_text("{ this is not a notebook", encoding="utf-8")
    (subs / "correct" / "99_unknown.ipynb").write_text("{}", encoding="utf-8")
    config = GradingConfig(labs_dir=labs, out_dir=root / "grades", workers=2,
                           limits=Limits(cell_timeout=4, time_limit=60, memory_mb=1024, max_restarts=3, threads=1))
    results, skipped = grade_submissions(subs, config, progress=False)
    return root, {r.student: r for r in results}, skipped


def test_release_has_no_instructor_content_and_runs_to_the_end_unanswered(tmp_path):
    instructor = nbf.read(FIXTURE)
    released = _released()
    text = json.dumps(released)
    for secret in ("BEGIN SOLUTION", "HIDDEN TESTS", "MARK SCHEME", "np.array([[1000.0, 0.0, -1000.0]])", "weights = np.exp(shifted)",
                   "np.tril(np.ones((T, T), dtype=bool))", "One point for overflow", "shift invariance", "graded_expected"):
        assert secret in json.dumps(instructor), f"fixture lost {secret!r}"
        assert secret not in text, f"{secret!r} leaked into the student version"
    assert "raise NotImplementedError(\"Exercise 'ex_softmax' is not answered yet" in _cell(released, "ex_softmax").source
    assert "raises-exception" in _cell(released, "ex_softmax_tests").metadata["tags"]
    assert _cell(released, "written_softmax_shift").source == "YOUR ANSWER HERE"
    assert all(not c.get("outputs") for c in released.cells if c.cell_type == "code")
    assert _cell(released, "ex_softmax_tests").metadata["editable"] is False
    assert _cell(released, "tolerance").metadata["deletable"] is False
    # Executed with plain nbclient (not our executor), unanswered: the exercise cells raise, tagged raises-exception,
    # and execution goes on to the last cell, as JupyterLab's Run All does.
    from nbclient import NotebookClient

    NotebookClient(released, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in released.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.get("execution_count") for c in code), "a cell after an unanswered exercise did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and any("not implemented yet" in o["evalue"] and "Exercise 'ex_softmax' is not answered yet" in o["evalue"]
                          for o in errors)


def test_release_refuses_broken_markup():
    nb = nbf.read(FIXTURE)
    bad = copy.deepcopy(nb)
    _cell(bad, "ex_mask").metadata["nbgrader"]["grade_id"] = "ex_softmax"
    with pytest.raises(nbf.AuthoringError, match="(?i)duplicate grade id|used twice"):
        student_version(bad)
    bad = copy.deepcopy(nb)
    bad.cells.append(new_code_cell("x = 1\n### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS"))
    with pytest.raises(nbf.AuthoringError, match="would leak"):
        student_version(bad)
    bad = copy.deepcopy(nb)
    _cell(bad, "ex_mask_tests").source += "\n### BEGIN HIDDEN TESTS\nassert True"
    with pytest.raises(nbf.AuthoringError, match="do not pair up"):
        student_version(bad)
    from course_lib.grading.release import leaks

    found = leaks(nb, nb)  # the instructor version "leaks" every secret line into itself
    assert any("1000.0" in line for line in found) and any("np.tril" in line for line in found)
    assert not leaks(nb, student_version(nb))


@pytest.mark.slow
def test_every_submission_gets_the_points_it_earned(graded):
    _, results, skipped = graded
    assert any("99_unknown" in s for s in skipped)
    for student, (_nb, softmax_pts, mask_pts, words) in SUBMISSIONS.items():
        assert not results[student].error, (student, results[student].error)
        grades = {g.exercise: g for g in results[student].grades}
        assert grades["ex_softmax"].points == softmax_pts, (student, grades["ex_softmax"])
        assert grades["ex_mask"].points == mask_pts, (student, grades["ex_mask"])
        reasons = " ".join(g.reason for g in grades.values()) + " ".join(results[student].notes)
        for word in words:  # a word, or a tuple of alternatives (a memory hog meets MemoryError or the OOM killer)
            assert any(w in reasons for w in ((word,) if isinstance(word, str) else word)), f"{student}: expected {word!r} in {reasons!r}"
        written = grades["written_softmax_shift"]
        assert (written.points, written.status) == ((0.0, "not attempted") if student == "untouched" else (None, "manual"))
    assert results["partial"].grades[1].status == "partial"
    assert any("'bonus' is not part of the lab" in n for n in results["fake_output"].notes)
    assert any("uses get_ipython" in n and "flagged" in n for n in results["fake_output"].notes)
    assert not results["correct"].notes and not results["helper_cell"].notes
    assert results["garbled"].error and results["garbled"].points == 0


@pytest.mark.slow
def test_grades_csv_and_feedback(graded):
    root, results, _ = graded
    with open(root / "grades" / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["student", "lab", "exercise", "points", "max_points", "status", "reason"]
    assert len(rows) == 3 * (len(SUBMISSIONS) + 1)
    assert {(r["exercise"], r["max_points"]) for r in rows} == {("ex_softmax", "2.0"), ("ex_mask", "2.0"), ("written_softmax_shift", "2.0")}
    correct = {r["exercise"]: r["points"] for r in rows if r["student"] == "correct"}
    assert correct == {"ex_softmax": "2.0", "ex_mask": "2.0", "written_softmax_shift": ""}
    with open(root / "grades" / "totals.csv", newline="") as fh:
        totals = {r["student"]: r for r in csv.DictReader(fh)}
    assert float(totals["partial"]["points"]) == 1 and float(totals["partial"]["pending_by_hand"]) == 2
    assert totals["correct"]["review"] == "" and "get_ipython" in totals["fake_output"]["review"]
    for student in SUBMISSIONS:
        page = (root / "grades" / "feedback" / student / f"{LAB}.html").read_text(encoding="utf-8")
        assert "Feedback: 01_fixture" in page and "hidden tests, not shown" in page
        for hidden in ("graded_expected", "GRADED", "scipy.special import softmax", "np.tril(np.ones((T, T)", "One point for overflow"):
            assert hidden not in page, f"{student}'s feedback shows hidden test text {hidden!r}"
    page = (root / "grades" / "feedback" / "fake_output" / f"{LAB}.html").read_text(encoding="utf-8")
    assert "alert(1)" in page and "<script>alert(1)" not in page, "student HTML output must be escaped"
    assert "<h2" in page, "markdown must still render"
    page = (root / "grades" / "feedback" / "loop_and_hog" / f"{LAB}.html").read_text(encoding="utf-8")
    assert "TimeLimitExceeded" in page


@pytest.mark.slow
def test_manual_grades_merge(graded, tmp_path):
    from course_lib.grading.batch import apply_manual_grades

    _, results, _ = graded
    manual = tmp_path / "manual.csv"
    manual.write_text("student,lab,exercise,points\ncorrect,01_fixture,written_softmax_shift,1.5\n", encoding="utf-8")
    mine = [copy.deepcopy(results["correct"])]
    assert apply_manual_grades(mine, manual) == 1 and mine[0].points == 5.5
    root, _, _ = graded
    shutil.copytree(root / "grades", tmp_path / "grades")
    done = subprocess.run([sys.executable, "-m", "course_lib.grading", "export", "--grades", str(tmp_path / "grades"),
                           "--manual", str(manual)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "1 hand grade(s) applied" in done.stdout, done.stdout + done.stderr
    with open(tmp_path / "grades" / "grades.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["student"] == "correct" and r["exercise"] == "written_softmax_shift")
    assert (row["points"], row["status"]) == ("1.5", "graded by hand")
    manual.write_text("student,lab,exercise,points\ncorrect,01_fixture,written_softmax_shift,9\n", encoding="utf-8")
    with pytest.raises(ValueError, match="maximum is 2.0"):
        apply_manual_grades([copy.deepcopy(results["correct"])], manual)


def test_find_jobs_explains_bad_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_jobs(tmp_path / "missing", tmp_path)
    (tmp_path / "subs" / "bad name!").mkdir(parents=True)
    (tmp_path / "labs").mkdir()
    shutil.copy(FIXTURE, tmp_path / "labs" / f"{LAB}.ipynb")
    jobs, skipped = find_jobs(tmp_path / "subs", tmp_path / "labs")
    assert not jobs and "not a usable student id" in skipped[0]


@pytest.mark.slow
def test_validate_and_cli(tmp_path):
    labs = tmp_path / "labs"
    labs.mkdir()
    shutil.copy(FIXTURE, labs / f"{LAB}.ipynb")
    out = tmp_path / "release"
    cli = [sys.executable, "-m", "course_lib.grading"]
    done = subprocess.run([*cli, "release", "--labs-dir", str(labs), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (out / f"{LAB}.ipynb").exists() and "graded_expected" not in (out / f"{LAB}.ipynb").read_text()
    mine = tmp_path / "mine.ipynb"
    nbf.write_atomic(_answer(NAIVE_SOFTMAX, edit=_edit_readonly), mine)
    done = subprocess.run([*cli, "validate", str(mine), "--cell-timeout", "30", "--memory-mb", "1024"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr  # the naive softmax passes the public test...
    assert "cell 'tolerance' was changed" in done.stdout and "passes public tests" in done.stdout
    done = subprocess.run([*cli, "validate", str(out / f"{LAB}.ipynb")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "not attempted" in done.stdout
    nbf.write_atomic(_answer(), tmp_path / "subs" / "ada" / f"{LAB}.ipynb")
    done = subprocess.run([*cli, "grade", str(tmp_path / "subs"), "--labs-dir", str(labs), "--out", str(tmp_path / "grades"),
                           "--workers", "1", "--quiet", "--memory-mb", "1024"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"ada\s+01_fixture\s+4/4 \+2", done.stdout), done.stdout
    assert f"student kernels: {isolation_mode()}; memory: " in done.stdout, done.stdout
    assert (tmp_path / "grades" / "feedback" / "ada" / f"{LAB}.html").exists()


def test_kernel_environment_keeps_what_labs_need_and_drops_secrets():
    from course_lib.grading.sandbox import kernel_env

    base = {"PATH": "/bin", "HOME": "/h", "HF_HOME": "/h/hf", "HF_TOKEN": "hf_secret", "AWS_SECRET_ACCESS_KEY": "x",
            "DIALOGSUM_DIR": "/d", "COURSE_CACHE": "/c", "GITHUB_TOKEN": "g", "SSH_AUTH_SOCK": "/s", "HF_HUB_OFFLINE": "0"}
    env = kernel_env({"COURSE_SMOKE": "1"}, base=base)
    assert {"PATH", "HOME", "HF_HOME", "DIALOGSUM_DIR", "COURSE_CACHE", "COURSE_SMOKE"} <= set(env)
    assert not {"HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "SSH_AUTH_SOCK"} & set(env)
    assert env["HF_HUB_OFFLINE"] == "1"  # grading never needs the network


def test_release_warns_when_a_written_answer_cell_holds_its_question():
    from course_lib.grading.release import question_in_answer_cells

    nb = nbf.read(FIXTURE)
    assert question_in_answer_cells(nb) == []  # the fixture asks in a cell of its own
    answer = _cell(nb, "written_softmax_shift")
    answer.source = "**Exercise 3.** Why subtract the maximum?\n\n=== BEGIN MARK SCHEME ===\noverflow\n=== END MARK SCHEME ==="
    assert "written_softmax_shift" in question_in_answer_cells(nb)[0]
    assert _cell(student_version(nb), "written_softmax_shift").source == "YOUR ANSWER HERE"  # why it matters


def test_find_jobs_accounts_for_every_file(tmp_path):
    """Every file in the submission folder is graded or skipped with a reason; one job per student and lab."""
    import os

    (tmp_path / "labs").mkdir()
    shutil.copy(FIXTURE, tmp_path / "labs" / f"{LAB}.ipynb")
    subs = tmp_path / "subs"
    (subs / "ada" / "nested").mkdir(parents=True)
    (subs / "bob").mkdir()
    nbf.write_atomic(_answer(), subs / "ada" / f"{LAB}.IPYNB")  # upper-case suffix: still a notebook
    nbf.write_atomic(_answer(), subs / "ada" / "nested" / f"{LAB}.ipynb")
    (subs / "ada" / "notes.txt").write_text("hi")
    older, newer = subs / "bob" / f"{LAB}.ipynb", subs / "bob" / f"{LAB[:2]}_final.ipynb"
    nbf.write_atomic(_answer(), older)
    nbf.write_atomic(_answer(), newer)
    os.utime(older, (1_000_000, 1_000_000))
    (subs / "stray.ipynb").write_text("{}")
    jobs, skipped = find_jobs(subs, tmp_path / "labs")
    assert sorted((j.student, j.submission.name) for j in jobs) == [("ada", f"{LAB}.IPYNB"), ("bob", newer.name)]
    text = "\n".join(skipped)
    assert "ada/nested/: a sub-folder" in text and "ada/notes.txt: not a notebook" in text
    assert f"bob/{older.name}: another file for {LAB}" in text and "stray.ipynb: not in a student folder" in text
    assert len(skipped) == 4


def test_feedback_keeps_the_key_out_of_every_output_and_sanitises_student_text(tmp_path):
    """An ordinary cell that prints hidden-test or solution text (inside a longer line), an exception quoting it,
    a 5 MB single-line print, and script links / remote images in a student's text: none reach the page."""
    from nbformat.v4 import new_markdown_cell, new_output

    from course_lib.grading.autograde import ExerciseGrade, SubmissionResult, merge
    from course_lib.grading.execute import CellRun
    from course_lib.grading.feedback import write_feedback
    from course_lib.grading.release import secrets_of

    instructor = nbf.read(FIXTURE)
    secrets = secrets_of(instructor)
    assert secrets, "the fixture has hidden tests and solutions"
    graded = merge(instructor, student_version(instructor))[0]  # what the grader runs: the lab with the stubs
    leak = new_code_cell("print(In[-3])")
    leak.outputs = [new_output("stream", name="stdout", text=f"sneaky: >>{secrets[0]}<< and more\n")]
    quoted = new_code_cell("raise ValueError")
    quoted.outputs = [new_output("error", ename="ValueError", evalue=f"x {secrets[-1]} y", traceback=["..."])]
    huge = new_code_cell("print('A' * 5_000_000)")
    huge.outputs = [new_output("stream", name="stdout", text="A" * 5_000_000 + "\n")]
    note = new_markdown_cell("[click me](javascript:alert(document.cookie)) ![t](https://tracker.example/p.png)")
    graded.cells += [leak, quoted, huge, note]
    runs = [CellRun(i, "ok") for i in range(len(graded.cells))]
    result = SubmissionResult("mallory", LAB, grades=[ExerciseGrade("ex", "code", 0.0, 1.0, "failed", "[x](javascript:alert(2))")],
                              notes=["![p](https://tracker.example/q.png)"])
    page = write_feedback(graded, runs, result, tmp_path / "fb.html", instructor=instructor).read_text(encoding="utf-8")
    assert not any(s in page for s in secrets if len(s) > 20), "a secret line reached the page"
    assert "2 output(s) were removed" in page
    assert len(page) < 1_000_000 and "more characters cut" in page
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", page, re.I), "a script link survived in the page"
    assert not re.search(r"""src\s*=\s*["']?\s*(https?:)?//tracker""", page, re.I), "a remote image survived in the page"
    assert "[click me](#link-removed)" in page or "#link-removed" in page
