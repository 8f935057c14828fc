"""The GPU script is ready to run as is on a GPU machine: its dry run checks every step's entry point here."""

import subprocess
import sys

from course_lib import labs


def test_gpu_check_dry_run_finds_every_step():
    out = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=labs.REPO, capture_output=True, text=True,
                         timeout=300, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.count("would run [") == 6 and "dry run ok" in out.stdout


def test_gpu_finetune_dry_run_prints_the_table(tmp_path):
    """bench/gpu_finetune.py end to end at toy size (stand-in, 2 steps, 2 test dialogues), on whatever device."""
    out = subprocess.run([sys.executable, "bench/gpu_finetune.py", "--dry-run", "--out", str(tmp_path / "ft")], cwd=labs.REPO,
                         capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    table = (tmp_path / "ft.md").read_text()
    assert all(f"| {m} |" in table for m in ("zero-shot", "full", "lora")) and "0.4081" in table
