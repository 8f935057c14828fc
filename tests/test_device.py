import pytest
import torch

from course_lib import device as dev


def test_auto_picks_cpu_without_accelerators():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert dev.get_device("auto").type == expected


def test_bad_device_names_raise_clear_errors():
    with pytest.raises(ValueError, match="Unknown DEVICE"):
        dev.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            dev.get_device("cuda")


def test_cpu_precision_is_plain_fp32_and_autocast_is_a_no_op():
    p = dev.best_precision("cpu")
    assert (p.dtype, p.use_scaler, p.name) == (torch.float32, False, "fp32")
    layer = torch.nn.Linear(4, 4)
    with dev.autocast(p):
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    assert not dev.grad_scaler(p).is_enabled()


def test_cpu_bf16_autocast_when_asked():
    p = dev.best_precision("cpu", prefer="bf16")
    with dev.autocast(p):
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="needs a GPU"):
        dev.best_precision("cpu", prefer="fp16")


def test_seed_makes_torch_numpy_python_repeatable():
    import random

    import numpy as np

    dev.set_seed(7)
    a = (torch.rand(3), np.random.rand(3), random.random())
    dev.set_seed(7)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_smoke_mode_reads_environment(monkeypatch):
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert dev.smoke_mode()
    monkeypatch.setenv("COURSE_SMOKE", "0")
    assert not dev.smoke_mode()


def test_environment_report_logs_device_for_the_runner(tmp_path, monkeypatch):
    log = tmp_path / "served.jsonl"
    monkeypatch.setenv("COURSE_SERVED_LOG", str(log))
    report = dev.environment_report("cpu", show=False)
    assert report["device"] == "cpu" and report["torch"] == torch.__version__
    assert '"what": "environment"' in log.read_text()


def test_threads_count_idle_cpus_and_honour_course_threads(monkeypatch):
    from course_lib import device as dv

    monkeypatch.delenv("COURSE_THREADS", raising=False)
    assert dv.choose_threads(cpus=2, load=0.0) == 2
    assert dv.choose_threads(cpus=2, load=1.8) == 1  # one busy core: one thread, not two fighting for it
    assert dv.choose_threads(cpus=2, load=9.0) == 1  # never zero
    assert dv.choose_threads(cpus=16, load=4.2) == 12
    monkeypatch.setenv("COURSE_THREADS", "3")
    assert dv.choose_threads(cpus=2, load=5.0) == 3
    monkeypatch.setenv("COURSE_THREADS", "many")
    with pytest.raises(ValueError, match="COURSE_THREADS"):
        dv.choose_threads()


def test_configure_threads_sets_torch_once(monkeypatch):
    import torch

    from course_lib import device as dv

    before = torch.get_num_threads()
    monkeypatch.setattr(dv, "_THREADS", None)
    monkeypatch.setenv("COURSE_THREADS", "1")
    try:
        assert dv.configure_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("COURSE_THREADS", "2")
        assert dv.configure_threads() == 1  # chosen once per process
    finally:
        torch.set_num_threads(before)


def test_inference_dtype_one_decision_per_device_kind(monkeypatch):
    import torch

    from course_lib import device as dv

    assert dv.inference_dtype("cpu", "t5")[0] == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # e.g. an A10G or A100
    assert dv.inference_dtype(torch.device("cuda"), "t5")[0] == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a T4
    dtype, why = dv.inference_dtype(torch.device("cuda"), "t5")
    assert dtype == torch.float32 and "float16" in why and "T5" in why
    assert dv.inference_dtype(torch.device("cuda"), "gpt2")[0] == torch.float16
    assert dv.inference_dtype(torch.device("mps"), "t5")[0] == torch.float32


def test_busy_cpus_sees_a_busy_core_at_once():
    import subprocess
    import sys
    import time

    from course_lib import device as dv

    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 5\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.5)
        assert dv.busy_cpus(sample_s=0.5) >= 0.7  # the 1-minute load average would still say ~0 here
    finally:
        spinner.kill()
        spinner.wait()
