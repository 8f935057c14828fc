"""Autograde a class of N submissions of one lab and time it.

python bench/bench_grading.py [--lab 01] [--students 30] [--workers 2]

Submissions are made from the lab itself: a third are the instructor version
(full marks), a third the released version (zero), a third the instructor
version with the first exercise's answer put back to its stub (partial). The
script checks every total against that expectation, then prints the wall time,
the mean time per submission and the parallel speed-up (sum of per-submission
times / wall time).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_lib import labs  # noqa: E402
from course_lib.grading import notebook as nbf  # noqa: E402
from course_lib.grading.batch import GradingConfig, grade_submissions  # noqa: E402
from course_lib.grading.execute import Limits  # noqa: E402
from course_lib.grading.release import student_version  # noqa: E402


def make_class(lab: Path, n: int, root: Path) -> dict[str, float]:
    """Write n submissions under root/<student>/<lab>.ipynb; return each student's expected autograded points."""
    source = nbf.read(lab)
    released = student_version(source, lab.name)
    exercises = [e for e in nbf.exercises(source) if e.kind == "code"]
    full = sum(e.points for e in exercises)
    partial = copy.deepcopy(source)
    first = exercises[0].solution_id
    stub = next(c for c in released.cells if nbf.grade_id(c) == first)
    next(c for c in partial.cells if nbf.grade_id(c) == first).source = stub.source
    kinds = [(source, full), (released, 0.0), (partial, full - exercises[0].points)]
    expected = {}
    for k in range(n):
        nb, points = kinds[k % 3]
        student = f"student{k:02d}"
        nbf.write_atomic(nb, root / student / lab.name)
        expected[student] = points
    return expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="01", help="lab number or name part")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    lab = labs.select([args.lab])[0]
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        root = Path(tmp)
        expected = make_class(lab, args.students, root / "submissions")
        config = GradingConfig(out_dir=root / "grades", workers=args.workers,
                               limits=Limits(threads=max(1, (os.cpu_count() or 1) // args.workers)))
        start = time.perf_counter()
        results, _ = grade_submissions(root / "submissions", config)
        wall = time.perf_counter() - start
    wrong = [(r.student, r.points, expected[r.student]) for r in results if r.points != expected[r.student] or r.error]
    per = [r.seconds for r in results]
    print(f"lab {lab.stem}: {len(results)} submissions, {args.workers} workers, {os.cpu_count()} CPU cores")
    print(f"wall time {wall:.1f} s; {wall / len(results):.2f} s per submission")
    print(f"per-submission time mean {statistics.mean(per):.1f} s (min {min(per):.1f}, max {max(per):.1f}); "
          f"speed-up from parallel workers {sum(per) / wall:.2f}x")
    if wrong:
        print(f"UNEXPECTED TOTALS (student, got, expected): {wrong}")
        return 1
    print("every total as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
