"""The probe codec and verdicts: values travel as data only, exactly, and the grader decides.

References: torch.equal / numpy.array_equal for the round trip (bit-exact for every dtype the labs use),
and the reference functions themselves for the poisoned copy of course_lib.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_lib.grading import probe as P
from course_lib.grading.references import ReferenceError_, poisoned_copy


def _roundtrip(value, build=True):
    return P.decode(json.loads(json.dumps(P.encode(value), allow_nan=False)), build=build)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.int64, torch.bool])
def test_tensors_survive_the_trip_bit_exactly(dtype):
    g = torch.Generator().manual_seed(0)
    t = (torch.randn(3, 4, 5, generator=g) * 100).to(dtype)
    if dtype.is_floating_point:
        t[0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")]).to(dtype)
    back = _roundtrip(t)
    assert back.dtype == t.dtype and back.shape == t.shape
    assert torch.equal(torch.nan_to_num(back.float(), 7.0), torch.nan_to_num(t.float(), 7.0))
    assert torch.equal(back.isnan(), t.isnan()) if dtype.is_floating_point else True


def test_plain_values_arrays_and_builders():
    value = {("e", "s"): 9, "t": (1, 2.5, None, True), "s": {1, 2}, "big": 2**70, "nan": float("nan"),
             "a": np.arange(6, dtype=np.int16).reshape(2, 3), "np_scalar": np.float32(1.5), "empty": torch.zeros(0, 3)}
    back = _roundtrip(value)
    assert back[("e", "s")] == 9 and back["t"] == (1, 2.5, None, True) and back["s"] == {1, 2} and back["big"] == 2**70
    assert math.isnan(back["nan"]) and np.array_equal(back["a"], value["a"]) and back["a"].dtype == np.int16
    assert back["np_scalar"] == 1.5 and back["empty"].shape == (0, 3)
    gen = _roundtrip(P.Build("generator", seed=5))
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=torch.Generator().manual_seed(5)))
    assert repr(_roundtrip(P.Build("chunk_encoder", k=2), build=False)) == "<chunk_encoder k=2>"


class _LiesAboutEquality(list):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("value,match", [(lambda x: x, "function cannot be graded"), (object(), "object cannot be graded"),
                                         (np.array(["a"]), "dtype <U1"), (torch.zeros(500_000), "too large")])
def test_what_is_not_data_is_refused_with_the_reason(value, match):
    with pytest.raises(P.ProbeDataError, match=match):
        P.encode(value)


@pytest.mark.parametrize("data", [{"__class__": "os.system"}, {"__tensor__": "float32", "shape": [2], "data": [1.0]},
                                  {"__tensor__": "system", "shape": [1], "data": [1]}, {"__float__": "1e309"},
                                  {"__build__": "os.system", "spec": {"__dict__": []}}, {"__tuple__": 3},
                                  {"__ndarray__": "float64", "shape": [1], "data": ["1"]}, {"a": 1}])
def test_decoding_is_strict(data):
    with pytest.raises(P.ProbeDataError):
        P.decode(data)


def _probe(**graded) -> P.Probe:
    source = f"GRADED = {dict(function='f', **graded)!r}\n" + \
        "def graded_cases(rng):\n    return [(rng.randint(1, 5),) for _ in range(4)]\n" + \
        "def graded_expected(n):\n    return list(range(n))\n"
    return P.load_probe("t", source)


def test_the_verdict_reads_only_data():
    probe = _probe()
    cases = probe.make_cases(1)
    right = {"results": [{"value": P.encode(list(range(c[0])))} for c in cases]}
    assert P.judge(probe, cases, right) is None
    liar = {"results": [{"value": P.encode(_LiesAboutEquality([0]))} for _ in cases]}  # a list subclass decodes as a list
    assert "length" in P.judge(probe, cases, liar) or "differ" in P.judge(probe, cases, liar)
    assert "raised ValueError: bad" in P.judge(probe, cases, {"results": [{"error": "ValueError: bad"}] * len(cases)})
    for forged in (None, {"results": "all passed"}, {"results": [True] * len(cases)}, {"results": []},
                   {"results": [{"value": {"__class__": "x"}}] * len(cases)}):
        assert P.judge(probe, cases, forged) is not None, forged


def _kernel_reply(fn, cases, monkeypatch, inputs_after=False) -> dict:
    """What ``answer`` displays in a kernel where the student defined ``f = fn`` (run here, in-process)."""
    import IPython.display

    shown = []
    monkeypatch.setattr(sys.modules["__main__"], "f", fn, raising=False)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    P.answer("f", json.dumps({"cases": [P.encode(c) for c in cases], "inputs_after": inputs_after}))
    return json.loads(json.dumps(shown[-1][P.MIME]))  # through JSON, as the message travels


def test_cases_that_must_raise(monkeypatch):
    source = ("from course_lib.grading.probe import Raises\nGRADED = {'function': 'f'}\n"
              "def graded_cases(rng):\n    return [(2.0,), (-1.0,), (0.0,)]\n"
              "def graded_expected(x):\n    return Raises('ValueError') if x <= 0 else x ** 0.5\n")
    probe = P.load_probe("t", source)
    cases = probe.make_cases(0)

    class Refused(ValueError):
        pass

    def right(x):
        if x <= 0:
            raise Refused(f"x must be positive, got {x}")
        return x ** 0.5

    def wrong_type(x):
        if x <= 0:
            raise TypeError("no")
        return x ** 0.5

    assert P.judge(probe, cases, _kernel_reply(right, cases, monkeypatch)) is None  # a subclass of ValueError counts
    assert P.judge(probe, cases, _kernel_reply(lambda x: abs(x) ** 0.5, cases, monkeypatch)) == \
        "f(-1.0) returned 1.0; it must raise ValueError"
    assert P.judge(probe, cases, _kernel_reply(wrong_type, cases, monkeypatch)) == \
        "f(-1.0) raised TypeError: no; it must raise ValueError"
    assert P.judge(probe, cases, _kernel_reply(lambda x: right(-1), cases, monkeypatch)).startswith("f(2.0) raised Refused")
    forged = {"results": [{"value": P.encode(2 ** 0.5)}] + [{"value": None, "error_types": ["ValueError"]}] * 2}
    assert "must raise ValueError" in P.judge(probe, cases, forged)


def test_a_judge_with_any_expected_value(monkeypatch):
    source = ("from course_lib.grading.probe import ANY, Raises\nGRADED = {'function': 'f'}\n"
              "def graded_cases(rng):\n    return [(3,), (0,)]\n"
              "def graded_expected(n):\n    return ANY if n > 0 else Raises('ValueError')\n"
              "def graded_judge(case, value, inputs_after):\n"
              "    return None if isinstance(value, int) and value > case[0] else 'too small'\n")
    probe = P.load_probe("t", source)
    cases = probe.make_cases(0)

    def bigger(n):
        if n <= 0:
            raise ValueError("n must be positive")
        return n + 1

    assert P.judge(probe, cases, _kernel_reply(bigger, cases, monkeypatch)) is None
    assert P.judge(probe, cases, _kernel_reply(lambda n: n + 1, cases, monkeypatch)) == "f(0) returned 1; it must raise ValueError"
    assert P.judge(probe, cases, _kernel_reply(lambda n: n, cases, monkeypatch)) == "f(3): too small"


def test_inputs_after_with_an_argument_built_in_the_kernel(monkeypatch):
    """In-place edits are seen; a generator the kernel built comes back as its Build, not as a refusal."""
    source = ("from course_lib.grading.probe import Build\n"
              "GRADED = {'function': 'f', 'inputs_after': True}\n"
              "def graded_cases(rng):\n    import torch\n    return [(Build('generator', seed=3), torch.zeros(3))]\n"
              "def graded_judge(case, value, inputs_after):\n"
              "    assert isinstance(inputs_after[0], Build) and inputs_after[0].spec == {'seed': 3}\n"
              "    return None if inputs_after[1].abs().sum() == 0 else 'you changed the input tensor'\n")
    probe = P.load_probe("t", source)
    cases = probe.make_cases(0)

    def pure(g, x):
        return torch.rand(3, generator=g) + x

    def in_place(g, x):
        return x.add_(torch.rand(3, generator=g))

    assert P.judge(probe, cases, _kernel_reply(pure, cases, monkeypatch, inputs_after=True)) is None
    assert P.judge(probe, cases, _kernel_reply(in_place, cases, monkeypatch, inputs_after=True)) == \
        "f(<generator seed=3>, tensor([0., 0., 0.])): you changed the input tensor"


def test_probes_are_checked_when_loaded():
    with pytest.raises(ValueError, match="GRADED"):
        P.load_probe("t", "def graded_cases(rng):\n    return [(1,)]\n")
    with pytest.raises(ValueError, match="unknown GRADED keys"):
        _probe(tolerance=1)
    with pytest.raises(ValueError, match="tuple of arguments"):
        P.load_probe("t", "GRADED = {'function': 'f'}\ndef graded_cases(rng):\n    return [1]\n"
                          "def graded_expected(x):\n    return x\n").make_cases(0)


def test_the_poisoned_copy_raises_for_references_only(tmp_path):
    copy = poisoned_copy(["course_lib.quantization.int8.quantize_absmax", "course_lib.tokenization.pair_frequencies"], tmp_path)
    code = ("import torch, course_lib.quantization as q, course_lib.tokenization as T; print(T.apply_merge({('a','b'): 1}, ('a','b'), 'ab'));"
            "import inspect; assert 'unavailable' in inspect.getsource(q.quantize_absmax)\n"
            "for f, a in ((q.quantize_absmax, (torch.ones(3),)), (T.pair_frequencies, ({},))):\n"
            "    try:\n        f(*a)\n    except RuntimeError as e:\n        print('raised', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"PYTHONPATH": str(copy.parent), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "{('ab',): 1}" in done.stdout and done.stdout.count("raised") == 2
    assert "course_lib.quantization.int8.quantize_absmax is unavailable" in done.stdout
    for bad in ("course_lib.tokenization.no_such_function", "course_lib.nope.f", "numpy.sum", "course_lib.tokenization"):
        with pytest.raises(ReferenceError_):
            poisoned_copy([bad], tmp_path / "again")
