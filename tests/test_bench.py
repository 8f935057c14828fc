"""The GPU script is ready to run as is on a GPU machine: its dry run checks every step's entry point here."""

import subprocess
import sys

from course_lib import labs


def test_gpu_check_dry_run_finds_every_step():
    out = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=labs.REPO, capture_output=True, text=True,
                         timeout=300, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.count("would run [") == 5 and "dry run ok" in out.stdout
