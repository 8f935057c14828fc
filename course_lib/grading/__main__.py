"""Instructor and student commands: ``python -m course_lib.grading {release,grade,export,validate} ...``.

release   write the student edition of every lab (or the named ones) into student/ (committed; CI checks it)
grade     autograde submissions/<student>/<lab>.ipynb into grades/ (grades.csv, totals.csv, feedback/)
export    rewrite grades.csv and totals.csv from the last grade run, adding hand-graded points (--manual)
validate  run your own notebook against its public tests before you submit
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import notebook as nbf
from .batch import REPO, GradingConfig, apply_manual_grades, grade_submissions, load_results, write_tables
from .cgroup import MemoryCgroup
from .execute import Limits
from .release import question_in_answer_cells, release_labs
from .sandbox import isolation_mode
from .validate import validate


def _require_nbgrader() -> None:
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        raise SystemExit("nbgrader is not installed; the grading commands need it: pip install -e \".[instructor]\"") from None


def _limits(args: argparse.Namespace, workers: int = 1) -> Limits:
    threads = args.threads or max(1, (os.cpu_count() or 1) // workers)
    return Limits(cell_timeout=args.cell_timeout, time_limit=args.time_limit, memory_mb=args.memory_mb,
                  max_restarts=args.max_restarts, threads=threads, smoke=not args.full)


def _add_limit_options(p: argparse.ArgumentParser) -> None:
    d = Limits()
    p.add_argument("--time-limit", type=float, default=d.time_limit, help=f"seconds per notebook (default {d.time_limit:g})")
    p.add_argument("--cell-timeout", type=float, default=d.cell_timeout, help=f"seconds per cell (default {d.cell_timeout:g})")
    p.add_argument("--memory-mb", type=int, default=d.memory_mb, help=f"memory limit of the kernel in MiB, 0 for none (default {d.memory_mb})")
    p.add_argument("--max-restarts", type=int, default=d.max_restarts, help="kernel restarts after a hang or crash")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per kernel (default: cores / workers)")
    p.add_argument("--full", action="store_true", help="run labs at full size (default: COURSE_SMOKE=1 sizes)")


def _select_labs(labs_dir: Path, names: list[str]) -> list[Path]:
    labs = sorted(labs_dir.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return labs
    chosen = [p for p in labs if any(p.stem.startswith(n) or n in p.stem for n in names)]
    if not chosen:
        raise SystemExit(f"No lab in {labs_dir} matches {names}.")
    return chosen


def cmd_release(args: argparse.Namespace) -> int:

    labs = _select_labs(Path(args.labs_dir), args.labs)
    for path in release_labs(labs, args.out):
        print(f"released {path}")
        for warning in question_in_answer_cells(nbf.read(Path(args.labs_dir) / path.name)):
            print(f"  warning: {warning}")
    print(f"{len(labs)} lab(s) in {args.out}/: solutions stubbed, hidden tests removed, outputs cleared.")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    config = GradingConfig(labs_dir=Path(args.labs_dir), out_dir=Path(args.out), workers=args.workers,
                           limits=_limits(args, args.workers), feedback=not args.no_feedback)
    memory = "a memory cgroup per run" if MemoryCgroup.available() else "an address-space limit (no writable memory cgroup)"
    print(f"student kernels: {isolation_mode()}; memory: {memory} (docs/INSTRUCTORS.md, threat model)")
    results, skipped = grade_submissions(args.submissions, config, manual=args.manual, progress=not args.quiet)
    for line in skipped:
        print(f"skipped {line}")
    print(f"\n{'student':<20} {'lab':<32} {'points':>12}  problems")
    for r in results:
        pending = sum(g.max_points for g in r.grades if g.points is None)
        pts = f"{r.points:g}/{r.max_points - pending:g}" + (f" +{pending:g}" if pending else "")
        print(f"{r.student:<20} {r.lab:<32} {pts:>12}  {r.error or ''}")
    print(f"\nwrote {config.out_dir}/grades.csv, totals.csv" + (" and feedback/<student>/<lab>.html" if config.feedback else ""))
    return 0


def cmd_export(args: argparse.Namespace) -> int:

    results, ignored = load_results(args.grades)
    for name in ignored:
        print(f"ignored results/{name}: not written by the last grade run")
    applied = apply_manual_grades(results, args.manual) if args.manual else 0
    grades, totals = write_tables(results, args.grades)
    pending = sum(1 for r in results for g in r.grades if g.points is None)
    print(f"wrote {grades} and {totals}: {len(results)} submission(s), {applied} hand grade(s) applied, {pending} still to grade by hand")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:

    checks, warnings, _ = validate(args.notebook, _limits(args))
    for w in warnings:
        print(f"warning: {w}")
    for c in checks:
        print(f"{c.exercise:<32} {c.status}" + (f"\n    {c.detail}" if c.detail else ""))
    ok = all(c.status in {"passes public tests", "written (graded by hand)"} for c in checks)
    print("\nAll public tests pass (hidden tests decide the grade)." if ok else "\nSome exercises are not done yet.")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.splitlines()[2:]))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="the student edition of the labs into student/")
    p.add_argument("labs", nargs="*", help="lab numbers or name parts (default: every lab)")
    p.add_argument("--labs-dir", default=str(REPO / "labs"))
    p.add_argument("--out", default=str(REPO / "student"), help="output folder (default: student/, the committed student edition)")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("grade", help="autograde a folder of submissions")
    p.add_argument("submissions", nargs="?", default=str(REPO / "submissions"), help="folder of <student>/<lab>.ipynb")
    p.add_argument("--labs-dir", default=str(REPO / "labs"))
    p.add_argument("--out", default=str(REPO / "grades"))
    p.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)), help="submissions graded in parallel")
    p.add_argument("--manual", default=None, help="CSV (student, lab, exercise, points) of hand-graded written answers")
    p.add_argument("--no-feedback", action="store_true", help="skip the per-student HTML")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_limit_options(p)
    p.set_defaults(func=cmd_grade)
    p = sub.add_parser("export", help="grades.csv and totals.csv from the last grade run, with hand grades")
    p.add_argument("--grades", default=str(REPO / "grades"), help="the grade run's output folder")
    p.add_argument("--manual", default=None, help="CSV (student, lab, exercise, points) of hand-graded written answers")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("validate", help="check your notebook against its public tests")
    p.add_argument("notebook")
    _add_limit_options(p)
    p.set_defaults(func=cmd_validate)
    args = parser.parse_args(argv)
    if args.command != "export":
        _require_nbgrader()
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
