"""Run labs headlessly with papermill: ``python -m course_lib.labs [--smoke|--full] [LAB ...]``.

Each lab runs in its own papermill process with a wall-clock timeout (a hang
catcher, not a time budget). Executed notebooks and an HTML copy go to
``build/``; a summary table (lab, status, seconds, device, what served) is
printed and written to ``build/summary.md`` and ``build/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic import atomic_write_text
from .offline import RUN_LOG_ENV, local_cache_env, read_run_log

REPO = Path(__file__).resolve().parent.parent
LABS_DIR = REPO / "labs"


@dataclass
class LabResult:
    lab: str  # notebook stem, e.g. '02_self_attention'
    status: str  # 'ok', 'failed' or 'timeout'
    seconds: float  # wall-clock time of the papermill run
    device: str = "?"  # what the lab's environment report chose
    served: list[str] = field(default_factory=list)  # one 'requested -> served (kind)' per load
    error: str = ""  # last lines of the error, if any
    output: str = ""  # executed notebook path


def discover(labs_dir: Path = LABS_DIR) -> list[Path]:
    """Every lab notebook, in order."""
    return sorted(p for p in labs_dir.glob("[0-9][0-9]_*.ipynb"))


def select(selectors: list[str], labs_dir: Path = LABS_DIR) -> list[Path]:
    """Labs whose file name starts with, or contains, one of ``selectors`` (all when empty)."""
    labs = discover(labs_dir)
    if not selectors:
        return labs
    chosen = [p for p in labs if any(p.stem.startswith(s) or s in p.stem for s in selectors)]
    if not chosen:
        names = ", ".join(p.stem for p in labs)
        raise SystemExit(f"No lab matches {selectors}. Labs: {names}")
    return chosen


def run_lab(path: Path, out_dir: Path, smoke: bool, timeout: float, parameters: dict | None = None,
            kernel: str = "python3", html: bool = True, env: dict | None = None) -> LabResult:
    """Execute one lab with papermill in a subprocess; never raises for a failing lab. ``env``: extra variables."""
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    log = out_dir / f"{path.stem}.served.jsonl"
    log.unlink(missing_ok=True)
    params = {"SMOKE": smoke, **(parameters or {})}
    env = {**os.environ, **(env or {}), "COURSE_SMOKE": "1" if smoke else "0", RUN_LOG_ENV: str(log),
           "PYTHONUNBUFFERED": "1",
           # figures must be captured in the executed notebook, whatever backend the caller uses
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           # the 'python3' kernelspec runs `python`: make that this interpreter, venv or not
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    cmd = [sys.executable, "-m", "papermill", str(path), str(output), "-k", kernel, "--cwd", str(path.parent),
           "-y", json.dumps(params), "--no-progress-bar", "--log-level", "WARNING"]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        status = "ok" if proc.returncode == 0 else "failed"
        error = "" if status == "ok" else "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    except subprocess.TimeoutExpired:
        status, error = "timeout", f"killed after {timeout:.0f} s (the runner's hang catcher)"
    if status == "failed" and output.exists():
        expected = exercise_errors(output)
        if expected is not None:  # a student notebook run unanswered: only its exercise cells failed
            status, error = "ok", f"{len(expected)} exercise cell(s) raised (unanswered or wrong): " + "; ".join(expected)
    seconds = time.perf_counter() - start
    device, served = read_run_log(log)
    if html and output.exists():
        try:
            _to_html(output)
        except Exception as exc:  # an HTML copy is a convenience, never a failure
            error += f"\n(HTML export failed: {exc})"
    return LabResult(path.stem, status, seconds, device, served, error, str(output))


def exercise_errors(executed: Path) -> list[str] | None:
    """The errors of an executed notebook when every one sits in a cell tagged ``raises-exception`` (the
    student edition's exercise cells) and the last code cell ran; None otherwise (a real failure).

    papermill lets such cells fail and goes on, as JupyterLab's Run All does, but still exits non-zero.
    """
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    if not code or code[-1].get("execution_count") is None:
        return None
    found = []
    for cell in code:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                if "raises-exception" not in cell.metadata.get("tags", []):
                    return None
                found.append(f"{out.get('ename')}: {str(out.get('evalue'))[:120]}")
    return found


def _to_html(notebook: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    return atomic_write_text(notebook.with_suffix(".html"), body)


def summary_table(results: list[LabResult]) -> str:
    """A markdown table of the results."""
    lines = ["| lab | status | seconds | device | served |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.lab} | {r.status} | {r.seconds:.1f} | {r.device} | {'; '.join(r.served) or '-'} |")
    return "\n".join(lines)


def run_labs(selectors: list[str] | None = None, smoke: bool = True, out_dir: Path = REPO / "build",
             timeout: float = 1800, parameters: dict | None = None, kernel: str = "python3",
             html: bool = True, env: dict | None = None) -> list[LabResult]:
    """Run the selected labs in order and return one LabResult each."""
    results = []
    for path in select(list(selectors or [])):
        print(f"running {path.name} ({'smoke' if smoke else 'full'}) ...", flush=True)
        result = run_lab(path, out_dir, smoke, timeout, parameters, kernel, html, env)
        print(f"  {result.status} in {result.seconds:.1f} s", flush=True)
        if result.error:
            print("  " + result.error.replace("\n", "\n  "), flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.labs", description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab numbers or name parts (default: all)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny sizes (default when COURSE_SMOKE=1)")
    mode.add_argument("--full", action="store_true", help="full sizes (default otherwise)")
    parser.add_argument("--out", default=str(REPO / "build"), help="folder for executed notebooks (default build/)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a lab is killed as hung")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="extra papermill parameter (VALUE parsed as JSON when possible), e.g. -p DEVICE='\"cpu\"'")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML copies")
    parser.add_argument("--real-fixture", nargs="?", const="", default=None, metavar="CACHE_DIR",
                        help="serve models from a local Hugging Face cache of small real-architecture models written "
                             "by course_lib.real_model_fixture (default folder: OUT/hf-fixture), hub unreachable: "
                             "runs the labs' real-model branches without the hub")
    args = parser.parse_args(argv)
    smoke = args.smoke or (not args.full and os.environ.get("COURSE_SMOKE", "0") == "1")
    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param {item!r}: expected NAME=VALUE")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    env = None
    if args.real_fixture is not None:
        cache = Path(args.real_fixture or Path(args.out) / "hf-fixture")
        # in a child process: writing it loads transformers, which the runner itself never needs
        subprocess.run([sys.executable, "-m", "course_lib.real_model_fixture", str(cache)], check=True)
        env = local_cache_env(cache)
        print(f"models from the fixture cache {cache} (hf-cache rung, hub unreachable)", flush=True)
    results = run_labs(args.labs, smoke, Path(args.out), args.timeout, params, args.kernel, not args.no_html, env)
    table = summary_table(results)
    out = Path(args.out)
    (out / "summary.md").write_text(table + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    print("\n" + table)
    failed = [r.lab for r in results if r.status != "ok"]
    if failed:
        print(f"\n{len(failed)} lab(s) failed: {', '.join(failed)} (executed copies in {out}/)")
        return 1
    print(f"\nall {len(results)} lab(s) ran; executed notebooks and HTML in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
