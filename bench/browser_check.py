"""A student's first session, in a real browser: JupyterLab opens a student lab, Run All, then check the result.

    python bench/browser_check.py [LAB ...]     (default: 02; make browser-check)

For each lab: copy student/<lab>.ipynb into a scratch folder, start JupyterLab there (smoke sizes, hub off),
drive headless Chromium (Debian's `chromium` + `chromedriver`) with selenium: open the notebook, wait for the
kernel, Run > Run All Cells, wait until no cell is queued or running, save, and read the saved notebook back.
It passes when every code cell ran (the last one included), every error output sits in an exercise cell and
names the exercise (the student edition's "not answered yet"), no dialog (kernel died, ...) is open, and the
math of a lab that has some was typeset. Prints one JSON line per lab (figures and widgets counted too);
the notebook as the browser saved it goes to build/browser/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


def available() -> str | None:
    """None when the check can run here, else what is missing."""
    if not CHROMIUM or not CHROMEDRIVER:
        return "no chromium / chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements.txt)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_lab(root: Path, port: int, token: str) -> subprocess.Popen:
    settings = root / ".jupyter" / "lab" / "user-settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))  # every cell in the page, not only the visible ones
    env = {**os.environ, "COURSE_SMOKE": "1", "HF_HUB_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
           "--ServerApp.open_browser=False"] + (["--allow-root"] if os.geteuid() == 0 else [])
    env.pop("MPLBACKEND", None)  # a student's kernel picks the inline backend itself
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("JupyterLab did not start listening within 60 s")


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _wait(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _kernel_state(port: int, token: str) -> str:
    from urllib.request import Request, urlopen

    request = Request(f"http://127.0.0.1:{port}/api/kernels", headers={"Authorization": f"token {token}"})
    with urlopen(request, timeout=10) as answer:
        kernels = json.load(answer)
    return kernels[0]["execution_state"] if kernels else "none"


def _run_command(driver, menu: str, command: str) -> None:
    """Click a JupyterLab main-menu entry, e.g. ('Run', 'runmenu:run-all')."""
    from selenium.webdriver.common.by import By

    [item] = [m for m in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if m.text.strip() == menu]
    item.click()
    entry = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, f'.lm-Menu-item[data-command="{command}"]'), 10,
                  f"menu entry {command}")
    entry[0].click()


def check_lab(lab: str, timeout: float = 600) -> dict:
    """Run one student lab in JupyterLab in headless Chromium; return what was seen."""
    import nbformat
    from selenium.webdriver.common.by import By

    [source] = sorted((REPO / "student").glob(f"{lab}*.ipynb")) or [None]
    if source is None:
        raise FileNotFoundError(f"no student notebook starting with {lab!r} in {REPO / 'student'}")
    result = {"lab": source.stem, "ok": False}
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        root = Path(tmp)
        shutil.copy(source, root / source.name)
        port, token = _free_port(), secrets.token_hex(16)
        server = _start_lab(root, port, token)
        driver = None
        start = time.time()
        try:
            driver = _driver()
            driver.get(f"http://127.0.0.1:{port}/lab/tree/{source.name}?token={token}")
            _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 90, "the notebook to open")
            _wait(lambda: "Idle" in driver.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget, #jp-main-statusbar").text
                  or driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"),
                  90, "the kernel to be idle")
            _run_command(driver, "Run", "runmenu:run-all")

            def last_cell_ran() -> bool:
                _run_command(driver, "File", "docmanager:save")
                time.sleep(1)
                saved = [c for c in nbformat.read(root / source.name, as_version=4).cells
                         if c.cell_type == "code" and c.source.strip()]
                return saved[-1].get("execution_count") is not None

            idle_polls = 0
            deadline = time.time() + timeout
            while time.time() < deadline:  # done when the last cell ran, or the kernel sat idle for 15 s
                time.sleep(5)
                idle_polls = idle_polls + 1 if _kernel_state(port, token) == "idle" else 0
                if idle_polls >= 3 or (idle_polls and last_cell_ran()):
                    break
            result["run_all_seconds"] = round(time.time() - start, 1)
            result["math_typeset"] = len(driver.find_elements(By.CSS_SELECTOR, "mjx-container, .MathJax"))
            result["images"] = len(driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"))
            result["widgets"] = len(driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-box, "
                                                                          ".jp-OutputArea-output .jupyter-widgets"))
            result["dialogs"] = [d.text[:200] for d in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog")]
            _run_command(driver, "File", "docmanager:save")
            time.sleep(2)
        finally:
            if driver is not None:
                driver.quit()
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
        nb = nbformat.read(root / source.name, as_version=4)
        keep = REPO / "build" / "browser"
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / source.name, keep / source.name)  # the notebook as the browser left it
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    errors, unexpected = [], []
    for cell in code:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                line = f"{out.get('ename')}: {str(out.get('evalue'))[:160]}"
                expected = "raises-exception" in cell.metadata.get("tags", []) and "not answered yet" in line
                (errors if expected else unexpected).append(line)
    result.update({"code_cells": len(code), "executed": sum(c.get("execution_count") is not None for c in code),
                   "last_cell_ran": code[-1].get("execution_count") is not None,
                   "unanswered_exercises": errors, "unexpected_errors": unexpected})
    has_math = any(c.cell_type == "markdown" and re.search(r"\$[^$\n]+\$", c.source) for c in nb.cells)
    result["ok"] = (result["last_cell_ran"] and not unexpected and not result["dialogs"]
                    and (result["math_typeset"] > 0 or not has_math) and result["executed"] == len(code))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", default=["02"], help="student labs by number (default: 02)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for Run All per lab")
    args = parser.parse_args(argv)
    missing = available()
    if missing:
        print(f"browser check cannot run: {missing}")
        return 2
    failed = 0
    for lab in args.labs:
        result = check_lab(lab, args.timeout)
        print(json.dumps(result), flush=True)
        failed += not result["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
