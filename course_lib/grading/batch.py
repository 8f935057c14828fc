"""Grade a class: every ``submissions/<student>/<lab>.ipynb``, in parallel, one process each.

Each submission is graded by ``python -m course_lib.grading.autograde`` in its
own process group, under a wall-clock limit; whatever happens to one (a hung
worker, a crash of the grader itself) becomes a zero with a reason on that
student's rows and the batch goes on. Results, rewritten as each submission
finishes: ``grades.csv`` (one row per student, lab and exercise), ``totals.csv``,
``skipped.csv`` (every other file, with the reason), ``feedback/<student>/<lab>.html``
and ``results/`` (one JSON per submission and a manifest of their checksums,
which ``export`` trusts and nothing else).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text
from ..checks import check_int
from . import notebook as nbf
from .autograde import REPO, ExerciseGrade, SubmissionResult, read_result
from .execute import Limits

GRADE_COLUMNS = ["student", "lab", "exercise", "points", "max_points", "status", "reason"]
_STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


@dataclass
class GradingConfig:
    labs_dir: Path = REPO / "labs"  # instructor versions (the labs as committed)
    out_dir: Path = REPO / "grades"  # grades.csv, totals.csv, feedback/, results/
    workers: int = 2  # submissions graded at the same time
    limits: Limits = field(default_factory=Limits)  # per-submission time, memory and restarts
    feedback: bool = True  # write per-student HTML feedback

    def __post_init__(self):
        check_int("GradingConfig", "workers", self.workers, 1)
        if not isinstance(self.limits, Limits):
            raise ValueError(f"GradingConfig.limits={self.limits!r}: must be a course_lib.grading Limits.")


@dataclass
class Job:
    student: str
    lab: Path  # instructor notebook
    submission: Path


def _lab_for(stem: str, labs: dict[str, Path]) -> Path | None:
    """The lab a submitted file's stem means: the exact name, else a unique NN prefix ('02', '02_mine')."""
    if stem in labs:
        return labs[stem]
    matches = [p for s, p in labs.items() if s[:2] == stem[:2]] if stem[:2].isdigit() else []
    return matches[0] if len(matches) == 1 else None


def find_jobs(submissions: str | Path, labs_dir: str | Path) -> tuple[list[Job], list[str]]:
    """Pair each submitted notebook with its lab by file name; return the jobs and, for every other file or
    folder in ``submissions``, why it was skipped. One job per student and lab: of two files for the same lab
    the newest (modification time) is graded and the other is listed as skipped."""
    submissions, labs_dir = Path(submissions), Path(labs_dir)
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder. Expected submissions/<student>/<lab>.ipynb.")
    labs = {p.stem: p for p in sorted(labs_dir.glob("[0-9][0-9]_*.ipynb"))}
    if not labs:
        raise FileNotFoundError(f"No labs (NN_name.ipynb) in {labs_dir}.")
    jobs, skipped = [], []
    for entry in sorted(submissions.iterdir()):
        if not entry.is_dir():
            skipped.append(f"{entry.name}: not in a student folder (expected submissions/<student>/<lab>.ipynb)")
            continue
        if entry.name.startswith(".") or not _STUDENT_RE.match(entry.name):
            skipped.append(f"{entry.name!r}: not a usable student id (letters, digits, . _ @ -)")
            continue
        chosen: dict[Path, list[Path]] = {}
        for item in sorted(entry.iterdir()):
            where = f"{entry.name}/{item.name}"
            if item.is_dir():
                skipped.append(f"{where}/: a sub-folder; notebooks must sit directly in {entry.name}/")
            elif not item.name.lower().endswith(".ipynb"):
                skipped.append(f"{where}: not a notebook (.ipynb)")
            elif (lab := _lab_for(item.name[: -len(".ipynb")], labs)) is None:
                skipped.append(f"{where}: no lab with that name in {labs_dir}")
            else:
                chosen.setdefault(lab, []).append(item)
        for lab, files in chosen.items():
            files.sort(key=lambda f: (f.stat().st_mtime, f.name))
            for older in files[:-1]:
                skipped.append(f"{entry.name}/{older.name}: another file for {lab.stem}; the newest, "
                               f"{files[-1].name}, is graded")
            jobs.append(Job(entry.name, lab, files[-1]))
    return jobs, skipped


def _failed_result(job: Job, reason: str, seconds: float) -> SubmissionResult:
    result = SubmissionResult(job.student, job.lab.stem, seconds=seconds, error=reason)
    result.grades = [ExerciseGrade(e.name, e.kind, 0.0, e.points, "failed", reason) for e in nbf.exercises(nbf.read(job.lab))]
    return result


def _grade_one(job: Job, config: GradingConfig, private: Path, k: int) -> SubmissionResult:
    """Grade one job in its own process; whatever happens, return a result (zeros with the reason on failure).

    The grader process writes its result into ``private`` (a folder only this user can open, hidden from every
    kernel); its output goes to files there, never to a pipe a student process could hold open."""
    out = Path(config.out_dir)
    result_path, log_path = private / f"{k}.json", private / f"{k}.log"
    cmd = [sys.executable, "-m", "course_lib.grading.autograde", str(job.lab), str(job.submission), str(result_path),
           "--student", job.student, "--limits", json.dumps(asdict(config.limits)),
           "--hide", str(out.resolve())]  # it hides its result's folder (``private``) itself
    if config.feedback:
        cmd += ["--feedback", str(out / "feedback" / job.student / f"{job.lab.stem}.html")]
    wall = config.limits.time_limit * 2 + 180  # two runs (the second with the references unavailable), start-up, feedback
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        code = proc.wait(timeout=wall)
        problem = "" if code == 0 else f"the grader process failed (exit {code}): {_tail(log_path)}"
    except subprocess.TimeoutExpired:
        problem = f"the grader process was stopped after {wall:.0f} s"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its kernels die with it (they are tied to their parent's life)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    if not problem:
        try:
            result = read_result(result_path)
            if (result.student, result.lab) != (job.student, job.lab.stem):
                raise ValueError("the result names another submission")
            result.seconds = time.perf_counter() - start  # the whole process: start-up, kernels, feedback
            return result
        except Exception as exc:
            problem = f"the grader's result could not be read: {type(exc).__name__}: {exc}"
    return _failed_result(job, problem, time.perf_counter() - start)


def _tail(path: Path, n: int = 400) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - n))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def grade_all(jobs: list[Job], config: GradingConfig, progress: bool = True,
              written: dict[str, str] | None = None) -> list[SubmissionResult]:
    """Grade every job with ``config.workers`` processes at a time; results in job order.

    The tables and the finished submission's result are written as each submission finishes, so an interrupted
    batch keeps what it graded (``written``: as in ``save_results``)."""
    if config.workers < 1:
        raise ValueError(f"workers={config.workers}: need at least 1.")
    results: dict[int, SubmissionResult] = {}
    written = {} if written is None else written
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="grading", unit="submission")
    with tempfile.TemporaryDirectory(prefix="course-grading-") as private, \
            ThreadPoolExecutor(max_workers=config.workers) as pool:
        os.chmod(private, 0o700)
        futures = {pool.submit(_grade_one, job, config, Path(private), k): k for k, job in enumerate(jobs)}
        for future in as_completed(futures):
            k = futures[future]
            try:
                results[k] = future.result()
            except Exception as exc:  # a bug in the grader: this submission only
                results[k] = _failed_result(jobs[k], f"grading failed: {type(exc).__name__}: {exc}", 0.0)
            save_results([results[i] for i in sorted(results)], config.out_dir, written)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return [results[k] for k in range(len(jobs))]


def grade_rows(results: list[SubmissionResult]) -> list[dict]:
    """One row per student, lab and exercise (points empty where grading is by hand)."""
    return [{"student": r.student, "lab": r.lab, "exercise": g.exercise, "points": "" if g.points is None else g.points,
             "max_points": g.max_points, "status": g.status, "reason": g.reason} for r in results for g in r.grades]


def apply_manual_grades(results: list[SubmissionResult], path: str | Path) -> int:
    """Fill hand-graded points from a CSV with columns student, lab, exercise, points; return how many."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"student", "lab", "exercise", "points"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs the columns {sorted(need)}; found {reader.fieldnames}.")
        given = {(row["student"], row["lab"], row["exercise"]): row["points"] for row in reader if row["points"].strip()}
    applied = 0
    for r in results:
        for g in r.grades:
            value = given.get((r.student, r.lab, g.exercise))
            if value is None or g.kind != "written":
                continue
            points = float(value)
            if not 0 <= points <= g.max_points:
                raise ValueError(f"{path}: {r.student}/{r.lab}/{g.exercise} has {points} points; the maximum is {g.max_points}.")
            g.points, g.status, g.reason = points, "graded by hand", "graded by hand"
            applied += 1
    return applied


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def write_tables(results: list[SubmissionResult], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``grades.csv`` and ``totals.csv`` (student, lab, points, max_points, pending_by_hand, review)."""
    out_dir = Path(out_dir)
    grades = _write_csv(out_dir / "grades.csv", GRADE_COLUMNS, grade_rows(results))
    totals = [{"student": r.student, "lab": r.lab, "points": r.points, "max_points": r.max_points,
               "pending_by_hand": sum(g.max_points for g in r.grades if g.points is None),
               "review": " | ".join(r.notes + ([r.error] if r.error else []))} for r in results]
    columns = ["student", "lab", "points", "max_points", "pending_by_hand", "review"]
    return grades, _write_csv(out_dir / "totals.csv", columns, totals)


MANIFEST = "manifest.json"


def save_results(results: list[SubmissionResult], out_dir: str | Path, written: dict[str, str] | None = None) -> None:
    """Write each result, the manifest of their checksums, and the tables, all atomically.

    ``written``: {result file: checksum} this batch already wrote (updated here); those files are not rewritten."""
    out_dir = Path(out_dir)
    written = {} if written is None else written
    sums = {}
    for r in results:
        rel = f"{r.student}/{r.lab}.json"
        text = json.dumps(asdict(r), indent=1)
        sums[rel] = hashlib.sha256(text.encode()).hexdigest()
        if written.get(rel) != sums[rel]:
            atomic_write_text(out_dir / "results" / rel, text)
            written[rel] = sums[rel]
    atomic_write_text(out_dir / "results" / MANIFEST, json.dumps({"results": sums}, indent=1))
    write_tables(results, out_dir)


def load_results(out_dir: str | Path) -> tuple[list[SubmissionResult], list[str]]:
    """The results the last ``grade`` run wrote, as its manifest lists them; and what was ignored.

    A result file the manifest does not list is ignored (named in the second list); one whose checksum
    differs from the manifest's was changed after grading, and nothing is exported."""
    results_dir = Path(out_dir) / "results"
    manifest = results_dir / MANIFEST
    if not manifest.exists():
        raise FileNotFoundError(f"No grading results in {results_dir}; run `python -m course_lib.grading grade` first.")
    sums = json.loads(manifest.read_text(encoding="utf-8"))["results"]
    results, changed = [], []
    for rel, digest in sums.items():
        path = results_dir / rel
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            changed.append(rel)
            continue
        results.append(read_result(path))
    if changed:
        raise RuntimeError(f"{len(changed)} result file(s) changed or vanished after grading ({', '.join(changed[:5])}); "
                           "grade again rather than export them.")
    ignored = sorted(str(p.relative_to(results_dir)) for p in results_dir.glob("*/*.json")
                     if str(p.relative_to(results_dir)) not in sums)
    return results, ignored


def grade_submissions(submissions: str | Path, config: GradingConfig, manual: str | Path | None = None,
                      progress: bool = True) -> tuple[list[SubmissionResult], list[str]]:
    """Grade a submissions folder and write the tables; return the results and the skipped files."""
    jobs, skipped = find_jobs(submissions, config.labs_dir)
    if not jobs:
        raise FileNotFoundError(f"No gradable notebooks in {submissions} (expected <student>/<lab>.ipynb). Skipped: {skipped}")
    out = Path(config.out_dir)
    for stale in (out / "results").glob("*/*.json"):  # results of an earlier run would mix into `export`
        stale.unlink()
    (out / "results" / MANIFEST).unlink(missing_ok=True)
    _write_csv(out / "skipped.csv", ["file", "reason"], [dict(zip(("file", "reason"), s.split(": ", 1))) for s in skipped])
    written: dict[str, str] = {}
    results = grade_all(jobs, config, progress, written)
    if manual is not None:
        apply_manual_grades(results, manual)
    save_results(results, config.out_dir, written)  # only results the hand grades changed are rewritten
    return results, skipped
