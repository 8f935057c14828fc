"""A student lab run in JupyterLab in headless Chromium (bench/browser_check.py); skipped without a browser."""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("browser_check", Path(__file__).resolve().parent.parent / "bench" / "browser_check.py")
browser_check = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(browser_check)


@pytest.mark.lab
@pytest.mark.skipif(browser_check.available() is not None, reason=str(browser_check.available()))
def test_student_lab_runs_all_in_jupyterlab():
    result = browser_check.check_lab("02", timeout=300)
    assert result["ok"], result
    assert result["images"] > 0 and result["math_typeset"] > 0
    assert len(result["unanswered_exercises"]) == 3, "lab 02's three exercises are reported by name, unanswered"
