"""Graded probes: the student's kernel only produces values; the grader decides.

A test cell's hidden region (``### BEGIN HIDDEN TESTS``) is not run in the student's
kernel. It defines a *probe*, read only by the grader's own process:

    GRADED = {"function": "count_pairs",                       # the name the student defines
              "references": ["course_lib.tokenization.pair_frequencies"]}  # unavailable in the second run
    def graded_cases(rng):          # inputs, as data, from a random.Random the grader seeds freshly
        return [(table,), ...]      # a tuple of positional arguments (or a dict of keyword arguments) per case
    def graded_expected(table):     # the right value, computed in the grader's process
        ...
    # or, for a property rather than one right value (random functions, a measurement):
    def graded_judge(case, value, inputs_after):   # None when right, else why it is wrong
        ...

``graded_expected`` may return ``Raises("ValueError")`` for a case the function must refuse
(the call must raise that exception or a subclass), or ``ANY`` where only ``graded_judge``
decides (a probe with both: the judge sees every value, the expected value is compared after).

Optional GRADED keys: ``rtol``, ``atol``, ``check_dtype`` (as in ``check``) and
``inputs_after`` (also send the arguments back after the call, to catch in-place edits).

In the kernel, a probe cell calls the student's function on the cases (decoded from
JSON data: numbers, strings, lists, tuples, dicts, tensors, arrays and the few
``Build`` objects below) and displays the encoded results. The grader decodes them
strictly as data (never pickles, never code) and compares them with the expected
values, so nothing a student cell rebinds or patches in its kernel decides a verdict.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .checks import CheckFailed, _compare
from .notebook import AuthoringError, grade_id, hidden_source, is_test

MIME = "application/vnd.course-probe+json"
MAX_ITEMS = 400_000  # numbers in one probe cell's answers (~10 MB of JSON, under the grader's 16 MB message limit)
MAX_DEPTH = 32
MAX_TEXT = 400  # characters of an error message sent back


class ProbeDataError(ValueError):
    """A value that cannot be sent as probe data (or data that does not decode); the message says which."""


@dataclass(frozen=True)
class Raises:
    """The expected outcome of a case the student's function must refuse: it raises ``exception`` (a name)."""

    exception: str


ANY = object()  # graded_expected's "no fixed value for this case": graded_judge alone decides


@dataclass
class Build:
    """An argument made in the kernel from data: ``Build("mlp", widths=[4, 8])`` (see BUILDERS)."""

    name: str
    spec: dict = field(default_factory=dict)

    def __init__(self, name: str, **spec):
        if name not in BUILDERS:
            raise ProbeDataError(f"unknown builder {name!r}; known: {sorted(BUILDERS)}")
        self.name, self.spec = name, spec

    def __repr__(self) -> str:
        return f"<{self.name} {' '.join(f'{k}={v!r}' for k, v in self.spec.items())}>"


# --- builders: objects a case needs that are not plain data -------------------------------------------------

def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(int(seed))


def _mlp(widths: list[int], bias: list[bool], layernorm: bool = False, seed: int = 0):
    """Linear layers of the given widths with GELU between them (and an optional final LayerNorm)."""
    import torch

    torch.manual_seed(int(seed))
    layers = []
    for a, b, has_bias in zip(widths, widths[1:], bias):
        layers += [torch.nn.Linear(a, b, bias=has_bias), torch.nn.GELU()]
    if layernorm:
        layers.append(torch.nn.LayerNorm(widths[-1]))
    return torch.nn.Sequential(*layers)


def _chunk_encoder(k: int):
    """A text -> ids function: one id per k non-space characters (plus one)."""
    def encode(text):
        return list(range(len("".join(text.split())) // k + 1))

    return encode


def _t5(config: dict, seed: int = 0):
    """A randomly initialised Hugging Face T5ForConditionalGeneration with the given T5Config fields."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(int(seed))
    return T5ForConditionalGeneration(T5Config(**config))


def _frozen_tensor(data: list, dtype: str = "int64"):
    """A tensor that cannot be edited in place (an inference tensor): an answer that writes into it raises.

    For cases whose other arguments cannot come back as data (a generator), where ``inputs_after`` cannot be used."""
    import torch

    kind = _torch_dtype(dtype)
    with torch.inference_mode():
        return torch.tensor(data, dtype=kind)


BUILDERS: dict[str, Callable[..., Any]] = {"generator": _generator, "mlp": _mlp, "chunk_encoder": _chunk_encoder,
                                           "t5": _t5, "frozen_tensor": _frozen_tensor}


# --- the codec: values <-> JSON-able data --------------------------------------------------------------------

def _float(x: float):
    return x if math.isfinite(x) else {"__float__": repr(x)}


def encode(value: Any, _depth: int = 0, _budget: list | None = None) -> Any:
    """``value`` as JSON-able data; raises ProbeDataError for anything that is not data."""
    budget = _budget if _budget is not None else [MAX_ITEMS]
    if _depth > MAX_DEPTH:
        raise ProbeDataError("the value is nested too deeply to grade")
    budget[0] -= 1
    if budget[0] < 0:
        raise ProbeDataError(f"the value holds more than {MAX_ITEMS:,} items")
    kind = type(value).__module__
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else {"__bigint__": str(value)}
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Build):
        return {"__build__": value.name, "spec": encode(value.spec, _depth + 1, budget)}
    if kind.startswith("torch") and hasattr(value, "detach") and hasattr(value, "dtype"):
        t = value.detach().cpu()
        budget[0] -= t.numel()
        if budget[0] < 0:
            raise ProbeDataError(f"a tensor of {t.numel():,} numbers is too large to grade")
        flat = (t.float() if t.dtype in _HALF_DTYPES() else t).reshape(-1).tolist()
        return {"__tensor__": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                "data": [_float(x) if isinstance(x, float) else x for x in flat]}
    if kind == "numpy" and hasattr(value, "dtype"):
        import numpy as np

        a = np.asarray(value)
        if a.ndim == 0 and type(value) is not np.ndarray:  # a NumPy scalar
            return encode(a.item(), _depth, budget)
        if a.dtype.kind not in "biuf":
            raise ProbeDataError(f"an array of dtype {a.dtype} cannot be graded (numbers or booleans only)")
        budget[0] -= a.size
        if budget[0] < 0:
            raise ProbeDataError(f"an array of {a.size:,} numbers is too large to grade")
        return {"__ndarray__": str(a.dtype), "shape": list(a.shape),
                "data": [_float(x) if isinstance(x, float) else x for x in a.reshape(-1).tolist()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, _depth + 1, budget) for v in value]}
    if isinstance(value, list):
        return [encode(v, _depth + 1, budget) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"__set__": [encode(v, _depth + 1, budget) for v in value]}
    if isinstance(value, Mapping):
        return {"__dict__": [[encode(k, _depth + 1, budget), encode(v, _depth + 1, budget)] for k, v in value.items()]}
    raise ProbeDataError(f"a {type(value).__name__} cannot be graded: return numbers, strings, lists, tuples, dicts, "
                         "tensors or arrays")


def _torch_dtype(name: Any):
    """``torch.<name>`` when it is a dtype; else ProbeDataError."""
    import torch

    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ProbeDataError(f"probe data: unknown tensor dtype {name!r}")
    return dtype


def _HALF_DTYPES():
    import torch

    return {torch.float16, torch.bfloat16}


_TAGS = {"__float__", "__bigint__", "__build__", "__tensor__", "__ndarray__", "__tuple__", "__set__", "__dict__"}


def decode(data: Any, build: bool = True, _depth: int = 0) -> Any:
    """The value ``data`` (from ``encode``) describes; anything else raises ProbeDataError. Strict: data only."""
    if _depth > MAX_DEPTH:
        raise ProbeDataError("probe data nested too deeply")
    if data is None or isinstance(data, (bool, str, int, float)):
        return data
    if isinstance(data, list):
        return [decode(v, build, _depth + 1) for v in data]
    if not isinstance(data, dict) or len(data.keys() & _TAGS) != 1:
        raise ProbeDataError(f"not probe data: {str(data)[:80]}")
    if "__float__" in data:
        text = data["__float__"]
        if text not in {"nan", "inf", "-inf"}:
            raise ProbeDataError(f"bad float {text!r}")
        return float(text)
    if "__bigint__" in data:
        return int(str(data["__bigint__"]))
    if "__tuple__" in data:
        return tuple(decode(v, build, _depth + 1) for v in _list(data["__tuple__"]))
    if "__set__" in data:
        return {decode(v, build, _depth + 1) for v in _list(data["__set__"])}
    if "__dict__" in data:
        pairs = _list(data["__dict__"])
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise ProbeDataError("bad dict data")
        return {decode(k, build, _depth + 1): decode(v, build, _depth + 1) for k, v in pairs}
    if "__build__" in data:
        name, spec = data["__build__"], decode(data.get("spec", {"__dict__": []}), build, _depth + 1)
        if name not in BUILDERS or not isinstance(spec, dict):
            raise ProbeDataError(f"unknown builder {name!r}")
        return BUILDERS[name](**spec) if build else Build(name, **spec)
    return _decode_array(data)


def _list(x: Any) -> list:
    if not isinstance(x, list):
        raise ProbeDataError("probe data: expected a list")
    return x


def _decode_array(data: dict):
    import numpy as np

    shape, flat = _list(data.get("shape")), _list(data.get("data"))
    if not all(isinstance(s, int) and s >= 0 for s in shape) or math.prod(shape) != len(flat):
        raise ProbeDataError("probe data: an array's shape does not match its data")
    values = [decode(v) if isinstance(v, dict) else v for v in flat]
    if not all(isinstance(v, (int, float, bool)) for v in values):
        raise ProbeDataError("probe data: arrays hold numbers only")
    if "__ndarray__" in data:
        return np.array(values, dtype=np.dtype(str(data["__ndarray__"]))).reshape(shape)
    import torch

    dtype = _torch_dtype(data["__tensor__"])
    return torch.tensor(values, dtype=torch.float64 if dtype in _HALF_DTYPES() else dtype).to(dtype).reshape(shape)


def dumps(value: Any) -> str:
    return json.dumps(encode(value), allow_nan=False, separators=(",", ":"))


# --- the kernel side ----------------------------------------------------------------------------------------

def _call(fn: Callable, args: Any) -> Any:
    if isinstance(args, dict):
        return fn(**args)
    return fn(*args)


def _encode_after(data: Any, args: Any, budget: list) -> Any:
    """The arguments after the call, as data; an argument built in the kernel (a Build) goes back as its Build."""
    if isinstance(data, dict) and "__build__" in data:
        return data
    if isinstance(args, tuple) and isinstance(data, dict) and isinstance(data.get("__tuple__"), list):
        return {"__tuple__": [_encode_after(d, a, budget) for d, a in zip(data["__tuple__"], args)]}
    if isinstance(args, dict) and isinstance(data, dict) and isinstance(data.get("__dict__"), list):
        return {"__dict__": [[k, _encode_after(d, args[decode(k)], budget)] for k, d in data["__dict__"]]}
    return encode(args, 0, budget)


def answer(function: str, payload: str) -> None:
    """Run in the student's kernel: call ``function`` on every case of ``payload``; display the results as data."""
    from IPython import get_ipython
    from IPython.display import display

    shell = get_ipython()
    namespace = shell.user_ns if shell is not None else __import__("__main__").__dict__
    request = json.loads(payload)
    fn = namespace.get(function)
    results, budget = [], [MAX_ITEMS]  # one budget for the whole cell: its answers travel as one message
    for case in request["cases"]:
        if not callable(fn):
            results.append({"error": f"NameError: {function} is not defined (run its cell)"})
            continue
        try:
            args = decode(case)
            value = _call(fn, args)
            result = {"value": encode(value, 0, budget)}
            if request.get("inputs_after"):
                result["inputs_after"] = _encode_after(case, args, budget)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the student's error (SystemExit included): reported as data
            result = {"error": f"{type(exc).__name__}: {str(exc)[:MAX_TEXT]}",
                      "error_types": [t.__name__ for t in type(exc).__mro__][:MAX_DEPTH]}
        results.append(result)
    display({MIME: {"function": function, "results": results}}, raw=True)


def probe_source(function: str, cases: list, inputs_after: bool = False) -> str:
    """The code of a probe cell for the kernel (the cases as JSON data)."""
    payload = json.dumps({"cases": [encode(c) for c in cases], "inputs_after": inputs_after}, allow_nan=False)
    return f"__import__('course_lib.grading.probe', fromlist=['answer']).answer({function!r}, {payload!r})"


# --- the grader side ----------------------------------------------------------------------------------------

@dataclass
class Probe:
    test_id: str  # grade_id of the test cell
    function: str  # the student's function the probe calls
    cases: Callable[[random.Random], list]  # graded_cases
    expected: Callable | None  # graded_expected(*args) -> value
    judge: Callable | None  # graded_judge(case, value, inputs_after) -> None | str
    references: list[str] = field(default_factory=list)  # course_lib functions an answer may not call
    rtol: float = 1e-5
    atol: float = 1e-6
    check_dtype: bool = True
    inputs_after: bool = False

    def make_cases(self, seed: int) -> list:
        cases = list(self.cases(random.Random(seed)))
        if not cases:
            raise ValueError(f"{self.test_id}: graded_cases returned no case")
        for case in cases:
            if not isinstance(case, (tuple, dict)):
                raise ValueError(f"{self.test_id}: each case must be a tuple of arguments or a dict of keyword "
                                 f"arguments, got {type(case).__name__}")
        return cases


def load_probe(test_id: str, hidden_source: str) -> Probe:
    """The probe a test cell's hidden region defines (instructor code, run only in the grader's process)."""
    namespace: dict = {"__name__": f"course_probe_{test_id}"}
    try:
        exec(compile(hidden_source, f"<hidden tests of {test_id}>", "exec"), namespace)
    except Exception as exc:
        raise AuthoringError(f"test cell {test_id!r}: its hidden tests do not run: {type(exc).__name__}: {exc}") from None
    graded = namespace.get("GRADED")
    if not isinstance(graded, dict) or not isinstance(graded.get("function"), str):
        raise AuthoringError(f"test cell {test_id!r}: its hidden tests must define GRADED = {{'function': ...}}, "
                             "graded_cases(rng) and graded_expected or graded_judge (see course_lib/grading/probe.py)")
    if not callable(namespace.get("graded_cases")) or not (callable(namespace.get("graded_expected"))
                                                            or callable(namespace.get("graded_judge"))):
        raise AuthoringError(f"test cell {test_id!r}: define graded_cases(rng) and graded_expected(...) or graded_judge(...)")
    unknown = set(graded) - {"function", "references", "rtol", "atol", "check_dtype", "inputs_after"}
    if unknown:
        raise AuthoringError(f"test cell {test_id!r}: unknown GRADED keys {sorted(unknown)}")
    return Probe(test_id, graded["function"], namespace["graded_cases"], namespace.get("graded_expected"),
                 namespace.get("graded_judge"), list(graded.get("references", [])), float(graded.get("rtol", 1e-5)),
                 float(graded.get("atol", 1e-6)), bool(graded.get("check_dtype", True)), bool(graded.get("inputs_after", False)))


def load_probes(nb, name: str = "notebook") -> dict[str, Probe]:
    """{test cell id: its probe} for every test cell of an instructor notebook; a test without one is an error."""
    probes = {}
    for cell in nb.cells:
        if is_test(cell):
            tid = grade_id(cell)
            hidden = hidden_source(cell)
            if not hidden.strip():
                raise AuthoringError(f"{name}: test cell {tid!r} has no hidden tests; its verdict must come from a "
                                     "probe (GRADED, graded_cases, graded_expected or graded_judge)")
            probes[tid] = load_probe(tid, hidden)
    return probes


def _describe_case(function: str, case: Any) -> str:
    """``f(args)`` for a message, shortened."""
    args = [repr(a) for a in case] if isinstance(case, tuple) else [f"{k}={v!r}" for k, v in case.items()]
    text = f"{function}({', '.join(args)})"
    return text if len(text) <= 160 else text[:157] + "..."


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def judge(probe: Probe, cases: list, reply: Any) -> str | None:
    """None when every case's answer is right; else why not (in words for the student). ``reply`` is untrusted."""
    try:
        results = reply["results"] if isinstance(reply, dict) else None
        if not isinstance(results, list) or len(results) != len(cases):
            return "the grader's call of your function gave no usable answer"
        for case, result in zip(cases, results):
            where = _describe_case(probe.function, case)
            if not isinstance(result, dict):
                return "the grader's call of your function gave no usable answer"
            expected = ANY
            if probe.expected is not None:
                expected = _call(probe.expected, decode(json.loads(json.dumps(encode(case)))))
                if expected is ANY and probe.judge is None:
                    raise AuthoringError(f"test cell {probe.test_id!r}: graded_expected returned ANY without a graded_judge")
            if isinstance(expected, Raises):
                types = result.get("error_types")
                if "error" not in result:
                    return f"{where} returned {_short(decode(result.get('value'), build=False))}; it must raise {expected.exception}"
                if not (isinstance(types, list) and expected.exception in types):
                    return f"{where} raised {str(result['error'])[:MAX_TEXT]}; it must raise {expected.exception}"
                continue
            if "error" in result:
                return f"{where} raised {str(result['error'])[:MAX_TEXT]}"
            value = decode(result.get("value"), build=False)
            after = decode(result["inputs_after"], build=False) if "inputs_after" in result else None
            if probe.judge is not None:
                why = probe.judge(copy.deepcopy(case), value, after)
                if why:
                    return f"{where}: {why}"
            if expected is not ANY:
                try:
                    _compare(value, expected, where, probe.rtol, probe.atol, probe.check_dtype)
                except CheckFailed as exc:
                    return str(exc)
        return None
    except ProbeDataError as exc:
        return f"your answer could not be read as data: {exc}"
