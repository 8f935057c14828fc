"""A red team as tests: submissions that attack the grader the way a determined student would.

One batch of the fixture lab (two workers) holds honest students and one submission per
attack. Each attack must earn exactly the points its honest part deserves, and nothing
outside the output folder may change: not the instructor's lab, not the submissions, not
a file elsewhere, and no process the students started may outlive the batch.

Mechanisms (issue 17): verdicts decided outside the kernel (rebinding ``check``, patching
the comparison or the probe, an input transformer); answers that call course_lib's
reference (an alias, a re-executed source file, a stash between the two runs); containment
(reading the instructor source and other submissions, killing the grader and classmates,
detached processes that write later or hold pipes); memory in a shared mapping; a flood
of output; bookkeeping (an answer in a later cell or an earlier one, a malformed grade_id, ghost or edited
results at export).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell

from course_lib.grading import notebook as nbf
from course_lib.grading.batch import GradingConfig, grade_submissions, load_results
from course_lib.grading.execute import Limits
from course_lib.grading.release import student_version
from course_lib.grading.sandbox import isolation_mode

FIXTURE = Path(__file__).parent / "fixtures" / "grading_lab.ipynb"
LAB = "01_fixture"
MARKER = "redteam-7f3a9c"  # in the command line of every process a student starts, to find survivors
GOOD_SOFTMAX = "def softmax(x, axis=-1):\n    z = x - x.max(axis=axis, keepdims=True)\n    return np.exp(z) / np.exp(z).sum(axis=axis, keepdims=True)"
GOOD_MASK = "def causal_mask(T):\n    return np.tril(np.ones((T, T), dtype=bool))"
WRONG_SOFTMAX = "def softmax(x, axis=-1):\n    return np.zeros_like(x)"
WRONG_MASK = "def causal_mask(T):\n    return np.ones((T, T), dtype=bool)"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not isolation_mode().startswith("namespaces"),
                                 reason=f"kernel isolation unavailable here ({isolation_mode()}): the attacks would hit this machine")]


def _notebook(softmax=GOOD_SOFTMAX, mask=GOOD_MASK, before_tests: str = "", after_tests: str = "", edit=None):
    nb = student_version(nbf.read(FIXTURE))
    cell = {nbf.grade_id(c): c for c in nb.cells if nbf.grade_id(c)}
    cell["ex_softmax"].source = softmax
    cell["ex_mask"].source = mask
    cell["written_softmax_shift"].source = "Overflow; shift invariance."
    if before_tests:
        nb.cells.insert(nb.cells.index(cell["ex_softmax"]) + 1, new_code_cell(before_tests))
    if after_tests:
        nb.cells.append(new_code_cell(after_tests))
    if edit:
        edit(nb, cell)
    return nb


PATCH_EVERYTHING = """
import numpy as np
import course_lib.grading as grading
import course_lib.grading.checks as checks
check = check_function = lambda *a, **k: None
grading.check = grading.check_function = check
checks._compare = lambda *a, **k: None
np.allclose = np.array_equal = lambda *a, **k: True
"""

FAKE_PROBE = """
import json
from IPython.display import display
import course_lib.grading.probe as P

def _fake(function, payload):  # claim the right answer for the public case, whatever the inputs
    n = len(json.loads(payload)["cases"])
    value = np.tril(np.ones((3, 3), dtype=bool)) if function == "causal_mask" else np.ones((3, 4)) / 4
    display({P.MIME: {"function": function, "results": [{"value": P.encode(value)}] * n}}, raw=True)

P.answer = _fake
get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"] if "check" in "".join(lines) else lines)
"""

ALIAS_MASK = "from course_lib.attention import causal_mask as _cm\n\ndef causal_mask(T):\n    return _cm(T).numpy()"
REEXEC_MASK = """import inspect
import course_lib.attention as A
_ns = {}
exec(compile(open(inspect.getfile(A)).read(), "copied", "exec"), _ns)

def causal_mask(T):
    return _ns["causal_mask"](T).numpy()"""
STASH_MASK = """import json, os
STASH = "/tmp/stash.json"

def causal_mask(T):
    try:
        from course_lib.attention import causal_mask as cm
        out = cm(T).numpy()
        table = json.load(open(STASH)) if os.path.exists(STASH) else {}
        table[str(T)] = out.tolist()
        json.dump(table, open(STASH, "w"))
        return out
    except RuntimeError:  # the second run: answer from what the first one saw
        return np.array(json.load(open(STASH))[str(T)])"""


def _escape(paths: dict[str, str]) -> str:
    """Read the instructor lab and other submissions, write into them, kill every process in sight, leave daemons."""
    return f"""
import glob, os, signal, subprocess
paths = {paths!r}
seen = []
for p in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        seen.append(open(p, "rb").read().replace(b"\\0", b" ").decode())
    except OSError:
        pass
print("processes I can see:", seen)
for name, path in paths.items():
    try:
        print("READ", name, os.listdir(path) if os.path.isdir(path) else open(path).read()[:300])
    except OSError as exc:
        print("cannot read", name, type(exc).__name__)
    try:
        target = path if not os.path.isdir(path) else os.path.join(path, "planted.txt")
        open(target, "a").write("forged")
    except OSError as exc:
        print("cannot write", name, type(exc).__name__)
for pid in [int(paths["pytest_pid"])] + [int(p.split("/")[2]) for p in glob.glob("/proc/[0-9]*")]:
    if pid not in (os.getpid(), 1):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
later = f"sleep 3; echo forged > {{paths['grades']}}/grades.csv; echo forged > {{paths['outside']}}; sleep 300 # {MARKER}"
subprocess.Popen(["sh", "-c", later], start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.Popen(["sh", "-c", "sleep 300 # {MARKER} holds the pipes"], close_fds=False)
if os.fork() == 0:  # a double-forked daemon
    os.setsid()
    if os.fork() == 0:
        os.execvp("sh", ["sh", "-c", "sleep 300 # {MARKER} daemon"])
    os._exit(0)
"""


SHARED_MASK = """import mmap

def causal_mask(T):  # 3 GiB of shared memory, which RLIMIT_DATA does not count
    m = mmap.mmap(-1, 3 * 2**30, flags=mmap.MAP_SHARED)
    for i in range(0, 3 * 2**30, 2**20):
        m[i:i + 2**20] = b"x" * 2**20
    return np.tril(np.ones((T, T), dtype=bool))"""


def _late_answer(nb, cell):  # the answer cell left as the stub, the answer in a new cell after the test
    stub = student_version(nbf.read(FIXTURE))
    cell["ex_mask"].source = next(c.source for c in stub.cells if nbf.grade_id(c) == "ex_mask")
    nb.cells.insert(nb.cells.index(cell["ex_mask_tests_edge"]) + 1, new_code_cell(GOOD_MASK))


def _early_answer(nb, cell):  # the answer in a new cell above the answer cell, which still holds the stub
    stub = student_version(nbf.read(FIXTURE))
    cell["ex_mask"].source = next(c.source for c in stub.cells if nbf.grade_id(c) == "ex_mask")
    nb.cells.insert(nb.cells.index(cell["ex_mask"]), new_code_cell(GOOD_MASK))


def _bad_grade_id(nb, cell):
    extra = new_code_cell("x = 1")
    extra.metadata["nbgrader"] = {"grade": True, "grade_id": ["not", "text"], "points": 99, "solution": False}
    nb.cells.insert(1, extra)


# student -> (notebook builder, points for ex_softmax, points for ex_mask, words expected in the reasons/notes)
def _submissions(paths: dict[str, str]):
    return {
        "honest": (lambda: _notebook(), 2, 2, []),
        "honest2": (lambda: _notebook(), 2, 2, []),
        "patch_checks": (lambda: _notebook(WRONG_SOFTMAX, WRONG_MASK, before_tests=PATCH_EVERYTHING), 0, 0, ["values differ"]),
        "fake_probe": (lambda: _notebook(WRONG_SOFTMAX, WRONG_MASK, before_tests=FAKE_PROBE), 0, 0, []),
        "alias_reference": (lambda: _notebook(mask=ALIAS_MASK), 2, 0, ["unavailable"]),
        "reexec_reference": (lambda: _notebook(mask=REEXEC_MASK), 2, 0, ["unavailable"]),
        "stash_between_runs": (lambda: _notebook(mask=STASH_MASK), 2, 0, ["unavailable"]),
        "escape": (lambda: _notebook(after_tests=_escape(paths)), 2, 2, []),
        "shared_memory": (lambda: _notebook(mask=SHARED_MASK), 2, 0, []),
        "flood": (lambda: _notebook(after_tests='print("x" * 100_000_000)\nfor _ in range(50):\n    print("y" * 2**20)'), 2, 2, []),
        "late_answer": (lambda: _notebook(edit=_late_answer), 2, 2, ["after its test"]),
        "early_answer": (lambda: _notebook(edit=_early_answer), 2, 0, ["replaced it", "flagged for a look"]),
        "bad_grade_id": (lambda: _notebook(edit=_bad_grade_id), 2, 2, ["grade_id is not text"]),
    }


def _snapshot(root: Path, skip: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and skip not in p.parents}


def _survivors() -> list[str]:
    found = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = p.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if MARKER in text and "pytest" not in text:
            found.append(f"{p.parent.name}: {text}")
    return found


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("redteam")
    labs, subs, out, outside = root / "labs", root / "submissions", root / "grades", root / "outside.txt"
    labs.mkdir()
    shutil.copy(FIXTURE, labs / f"{LAB}.ipynb")
    paths = {"lab": str(labs / f"{LAB}.ipynb"), "submissions": str(subs), "grades": str(out), "outside": str(outside),
             "other_submission": str(subs / "honest" / f"{LAB}.ipynb"), "pytest_pid": str(os.getpid()),
             "repo_course_lib": str(Path(nbf.__file__).resolve().parents[1] / "attention.py")}
    submissions = _submissions(paths)
    for student, (build, *_rest) in submissions.items():
        nbf.write_atomic(build(), subs / student / f"{LAB}.ipynb")
    outside.write_text("untouched\n", encoding="utf-8")
    before = _snapshot(root, out)
    repo_before = hashlib.sha256(Path(paths["repo_course_lib"]).read_bytes()).hexdigest()
    config = GradingConfig(labs_dir=labs, out_dir=out, workers=2,
                           limits=Limits(cell_timeout=20, time_limit=120, memory_mb=1024, max_restarts=3, threads=1))
    start = time.perf_counter()
    results, skipped = grade_submissions(subs, config, progress=False)
    seconds = time.perf_counter() - start
    survivors_now = _survivors()
    time.sleep(5)  # the daemons' `sleep 3; echo forged` would have fired by now
    return {"root": root, "out": out, "results": {r.student: r for r in results}, "submissions": submissions,
            "before": before, "after": _snapshot(root, out), "survivors": survivors_now + _survivors(),
            "repo_same": repo_before == hashlib.sha256(Path(paths["repo_course_lib"]).read_bytes()).hexdigest(),
            "seconds": seconds, "skipped": skipped}


def test_every_attack_earns_exactly_what_its_honest_part_deserves(attacked):
    results = attacked["results"]
    assert set(results) == set(attacked["submissions"]), "every submission has a result"
    for student, (_build, softmax_pts, mask_pts, words) in attacked["submissions"].items():
        r = results[student]
        grades = {g.exercise: g for g in r.grades}
        got = (grades["ex_softmax"].points, grades["ex_mask"].points)
        assert got == (softmax_pts, mask_pts), f"{student}: got {got}, expected {(softmax_pts, mask_pts)}: {r.grades} {r.error}"
        text = " ".join(g.reason for g in r.grades) + " " + " ".join(r.notes)
        for word in words:
            assert word in text, f"{student}: expected {word!r} in {text!r}"
        assert "not attempted" not in {g.status for g in r.grades}, f"{student}: every exercise was attempted"


def test_nothing_outside_the_output_folder_changed_and_nothing_survives(attacked):
    assert attacked["before"] == attacked["after"], "a file outside the output folder changed"
    assert attacked["repo_same"], "course_lib's source changed"
    assert (attacked["root"] / "outside.txt").read_text() == "untouched\n"
    assert not attacked["survivors"], f"student processes outlived the batch: {attacked['survivors']}"


def test_tables_are_the_graders_and_complete(attacked):
    out = attacked["out"]
    with open(out / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "forged" not in (out / "grades.csv").read_text()
    assert {r["student"] for r in rows} == set(attacked["submissions"])
    assert len(rows) == 3 * len(attacked["submissions"])
    with open(out / "totals.csv", newline="") as fh:
        totals = {r["student"]: float(r["points"]) for r in csv.DictReader(fh)}
    assert totals["honest"] == 4 and totals["escape"] == 4 and totals["patch_checks"] == 0


def test_feedback_holds_no_key_and_is_bounded(attacked):
    for student in attacked["submissions"]:
        page = (attacked["out"] / "feedback" / student / f"{LAB}.html").read_text(encoding="utf-8")
        for secret in ("graded_expected", "GRADED", "scipy.special import softmax", "weights = np.exp(shifted)",
                       "One point for overflow"):
            assert secret not in page, f"{student}'s feedback shows {secret!r}"
        assert len(page.encode()) < 2_000_000, f"{student}'s feedback is {len(page.encode()):,} bytes"
    escape = (attacked["out"] / "feedback" / "escape" / f"{LAB}.html").read_text(encoding="utf-8")
    assert "cannot read lab" in escape and "cannot read other_submission" in escape
    for folder in ("submissions", "grades"):  # hidden under an empty folder
        assert f"cannot read {folder}" in escape or f"READ {folder} []" in escape, folder
    assert "cannot write repo_course_lib" in escape
    assert "course_lib.grading.autograde" not in escape, "the kernel saw the grader's command line"


def test_export_trusts_only_the_manifest(attacked, tmp_path):
    grades = tmp_path / "grades"
    shutil.copytree(attacked["out"], grades)
    ghost = grades / "results" / "ghost" / f"{LAB}.json"
    ghost.parent.mkdir()
    data = json.loads((grades / "results" / "honest" / f"{LAB}.json").read_text())
    ghost.write_text(json.dumps({**data, "student": "ghost"}))
    results, ignored = load_results(grades)
    assert "ghost" not in {r.student for r in results} and ignored == [f"ghost/{LAB}.json"]
    done = subprocess.run([sys.executable, "-m", "course_lib.grading", "export", "--grades", str(grades)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ignored results/ghost" in done.stdout, done.stdout + done.stderr
    forged = grades / "results" / "patch_checks" / f"{LAB}.json"
    data = json.loads(forged.read_text())
    data["grades"][0]["points"] = 2.0
    forged.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "course_lib.grading", "export", "--grades", str(grades)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "changed or vanished after grading" in done.stderr, done.stdout + done.stderr
