"""The sandbox contains the student's kernel: its processes die with it, it sees and touches only what it may,
its memory is counted across processes and shared mappings, and its output cannot swell the grader."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_lib.grading.cgroup import MemoryCgroup
from course_lib.grading.execute import Limits, run_notebook
from course_lib.grading.sandbox import Isolation, isolation_mode

LIMITS = Limits(cell_timeout=20, time_limit=90, memory_mb=1024, max_restarts=2, threads=1)
needs_namespaces = pytest.mark.skipif(not isolation_mode().startswith("namespaces"),
                                      reason=f"kernel namespaces unavailable here ({isolation_mode()})")


def _notebook(*sources: str):
    return new_notebook(cells=[new_code_cell(textwrap.dedent(s)) for s in sources])


def _cmdlines_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.fixture
def outside_tmp():
    """A folder outside /tmp, /var/tmp and /dev/shm (the kernel gets its own tmpfs there), readable by all."""
    for base in ("/mnt", "/srv", "/opt", str(Path.home())):
        if os.access(base, os.W_OK) and os.path.isdir(base):
            folder = Path(tempfile.mkdtemp(prefix="course-sandbox-test-", dir=base))
            folder.chmod(0o755)
            yield folder
            shutil.rmtree(folder, ignore_errors=True)
            return
    pytest.skip("no writable folder outside /tmp")


@needs_namespaces
@pytest.mark.parametrize("isolation", [None, Isolation()], ids=["no-isolation", "isolation"])
def test_detached_processes_die_with_the_kernel(tmp_path, isolation):
    marker = f"course-marker-{uuid.uuid4().hex}"
    work = tmp_path / "work"
    work.mkdir()
    daemon = (f"import os, time  # {marker}\n"
              "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              "        time.sleep(4)\n        open('late-py', 'w').write('x')\n    os._exit(0)\n")
    nb = _notebook(f"""
        import subprocess, sys
        subprocess.Popen(['sh', '-c', 'sleep 4; touch late-sh # {marker}'], start_new_session=True)
        subprocess.run([sys.executable, '-c', {daemon!r}], check=True)
        """)
    runs = run_notebook(nb, LIMITS, cwd=str(work), isolation=isolation)
    assert runs[0].status == "ok", runs
    assert _cmdlines_with(marker) == []  # nothing the student started outlives the notebook
    time.sleep(5)
    assert not (work / "late-sh").exists() and not (work / "late-py").exists()


@needs_namespaces
def test_kernel_sees_and_touches_only_what_it_may(tmp_path, outside_tmp):
    secret_dir, secret_file, ro, target, source = (outside_tmp / n for n in ("secret", "key.txt", "ro", "pkg", "pkg-copy"))
    for folder in (secret_dir, ro, target, source):
        folder.mkdir()
    (secret_dir / "answers.txt").write_text("42")
    secret_file.write_text("instructor key")
    (ro / "data.txt").write_text("data")
    (target / "mod.py").write_text("original")
    (source / "mod.py").write_text("overlay")
    for path in outside_tmp.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    work = tmp_path / "work"
    work.mkdir()
    isolation = Isolation(hide=[str(secret_dir), str(secret_file), str(outside_tmp / "missing")],
                          overlays={str(target): str(source)}, readonly=[str(ro)])
    me = os.getpid()
    checks = {
        "hidden folder": f"assert os.listdir({str(secret_dir)!r}) == []",
        "hidden file": f"assert open({str(secret_file)!r}).read() == ''",
        "grader cmdline": f"assert not os.path.exists('/proc/{me}/cmdline')",
        "no grader in /proc": ("assert not [p for p in os.listdir('/proc') if p.isdigit() and "
                               "b'pytest' in open(f'/proc/{p}/cmdline', 'rb').read()]"),
        "kill grader": f"try:\n    os.kill({me}, 0)\nexcept (ProcessLookupError, PermissionError):\n    pass\n"
                       "else:\n    raise AssertionError('could signal the grader')",
        "readonly": f"try:\n    open({str(ro / 'data.txt')!r}, 'w')\nexcept OSError:\n    pass\n"
                    "else:\n    raise AssertionError('wrote a read-only path')",
        "overlay content": f"assert open({str(target / 'mod.py')!r}).read() == 'overlay'",
        "overlay readonly": f"try:\n    open({str(target / 'new.py')!r}, 'w')\nexcept OSError:\n    pass\n"
                            "else:\n    raise AssertionError('wrote into the overlay')",
        "cwd writable": "open('out.txt', 'w').write('ok')",
    }
    nb = _notebook("import os", *checks.values())
    runs = run_notebook(nb, LIMITS, cwd=str(work), isolation=isolation)
    for run, name in zip(runs[1:], checks):
        assert run.status == "ok", (name, run)
    assert (work / "out.txt").read_text() == "ok"
    assert (target / "mod.py").read_text() == "original" and not (target / "new.py").exists()
    assert secret_file.read_text() == "instructor key"


@needs_namespaces
def test_paths_under_tmp_stay_visible_read_only(tmp_path):
    """A checkout in /tmp (a CI clone: the repository, its virtual environment) and an overlay whose source is in
    /tmp stay visible behind the kernel's private /tmp, read-only; the rest of the real /tmp does not."""
    checkout, target, source, other = (tmp_path / n for n in ("checkout", "pkg", "pkg-copy", "other"))
    for folder in (checkout, target, source, other):
        folder.mkdir()
    (checkout / "lib.txt").write_text("lib")
    (target / "mod.py").write_text("original")
    (source / "mod.py").write_text("overlay")
    (other / "secret.txt").write_text("secret")
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    work = tmp_path / "work"
    work.mkdir()
    checks = {
        "checkout readable": f"assert open({str(checkout / 'lib.txt')!r}).read() == 'lib'",
        "checkout read-only": f"try:\n    open({str(checkout / 'new.txt')!r}, 'w')\nexcept OSError:\n    pass\n"
                              "else:\n    raise AssertionError('wrote into the checkout')",
        "overlay": f"assert open({str(target / 'mod.py')!r}).read() == 'overlay'",
        "rest of /tmp hidden": f"assert not os.path.exists({str(other / 'secret.txt')!r})",
    }
    isolation = Isolation(readonly=[str(checkout), str(target)], overlays={str(target): str(source)})
    runs = run_notebook(_notebook("import os", *checks.values()), LIMITS, cwd=str(work), isolation=isolation)
    for run, name in zip(runs[1:], checks):
        assert run.status == "ok", (name, run)


def test_the_grading_kernel_sees_the_data_read_only_and_not_the_key(tmp_path, monkeypatch):
    from course_lib.grading.autograde import REPO, kernel_isolation

    monkeypatch.setenv("DIALOGSUM_DIR", str(tmp_path))
    iso = kernel_isolation([str(tmp_path / "grades")])
    assert str(tmp_path.resolve()) in iso.readonly and str(REPO) in iso.readonly
    assert {str(REPO / "labs"), str(REPO / ".git"), str((tmp_path / "grades").resolve())} <= set(iso.hide)
    monkeypatch.setenv("DIALOGSUM_DIR", str(tmp_path / "missing"))
    assert str(tmp_path / "missing") not in kernel_isolation([]).readonly


@needs_namespaces
def test_kernel_home_is_private_and_the_model_cache_loads_read_only(tmp_path, monkeypatch):
    """Libraries that write under ~ (datasets, matplotlib) get a private writable home; models the grader
    downloaded (here the offline fixture, in a hub cache under /tmp, which the kernel's own /tmp hides) load."""
    from course_lib.real_model_fixture import MODELS, write_hf_cache

    hub = tmp_path / "hub"
    write_hf_cache(hub, ["bert-base-uncased"])
    for path in [tmp_path, *hub.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert "bert-base-uncased" in MODELS
    work = tmp_path / "work"
    work.mkdir()
    checks = {
        "home writable": "p = os.path.expanduser('~/.cache/x/y'); os.makedirs(p); open(p + '/f', 'w').write('1')",
        "home is not the grader's": f"assert os.environ['HOME'] != {os.environ.get('HOME', '')!r}",
        "model loads": "from transformers import AutoTokenizer\n"
                       "assert AutoTokenizer.from_pretrained('bert-base-uncased').tokenize('hello world') == ['hello', 'world']",
        "cache read-only": "try:\n    open(os.path.join(os.environ['HF_HUB_CACHE'], 'x'), 'w')\nexcept OSError:\n    pass\n"
                           "else:\n    raise AssertionError('wrote into the model cache')",
    }
    runs = run_notebook(_notebook("import os", *checks.values()), LIMITS, cwd=str(work), isolation=Isolation())
    for run, name in zip(runs[1:], checks):
        assert run.status == "ok", (name, run)
    assert sorted(p.name for p in hub.iterdir()) == ["models--bert-base-uncased"]


@needs_namespaces
def test_shared_memory_counts_against_the_limit(tmp_path):
    name = f"course-shm-{uuid.uuid4().hex}"
    cgroup = MemoryCgroup.available()
    writes = {
        # anonymous MAP_SHARED memory is not in RLIMIT_DATA: the cgroup (or RLIMIT_AS) must stop it
        "mmap": ("import mmap\nm = mmap.mmap(-1, 1536 * 2**20, flags=mmap.MAP_SHARED)\n"
                 "for i in range(0, len(m), 2**20):\n    m[i:i + 2**20] = b'x' * 2**20", None),
        # /dev/shm is the kernel's own tmpfs; made larger than the limit so only the memory limit stops it
        "shm": (f"with open('/dev/shm/{name}', 'wb') as f:\n    for _ in range(1536):\n        f.write(b'x' * 2**20)",
                Isolation(tmp_mb=4096 if cgroup else 256)),
    }
    limits = Limits(cell_timeout=60, time_limit=120, memory_mb=512, max_restarts=2, threads=1)
    try:
        for what, (source, isolation) in writes.items():
            nb = _notebook(source, "print('still here')")
            runs = run_notebook(nb, limits, cwd=str(tmp_path), isolation=isolation)
            assert runs[0].status in ("error", "crashed"), (what, runs[0])
            assert runs[0].status == "crashed" or runs[0].ename in ("MemoryError", "OSError", "BusError"), (what, runs[0])
            assert runs[1].status == "ok", (what, runs[1])
    finally:
        Path(f"/dev/shm/{name}").unlink(missing_ok=True)  # only there if the old, unisolated kernel wrote it


_FLOOD_RUNNER = """
import json, sys
from nbformat.v4 import new_code_cell, new_notebook
from course_lib.grading.execute import Limits, run_notebook

def hwm_kb():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])

before = hwm_kb()
nb = new_notebook(cells=[new_code_cell(s) for s in sys.argv[2:]])
runs = run_notebook(nb, Limits(cell_timeout=30, time_limit=150, memory_mb=2048, max_restarts=2), cwd=sys.argv[1])
sizes = [len(json.dumps(c.outputs)) for c in nb.cells]
print(json.dumps({"growth_mb": (hwm_kb() - before) / 1024, "sizes": sizes, "status": [r.status for r in runs]}))
"""


@pytest.mark.slow
def test_output_floods_do_not_swell_the_grader(tmp_path):
    cells = ["print('x' * 100_000_000)", "for _ in range(50):\n    print('y' * 2**20)", "print('after')"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _FLOOD_RUNNER, str(tmp_path), *cells], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(size <= 3 * 2**20 for size in report["sizes"]), report
    assert report["growth_mb"] < 60, report
    assert report["status"][2] == "ok", report
