"""Public checks students run inside a lab: compare an answer with a reference, explain any difference.

``check(actual, expected, "what")`` compares numbers, strings, sequences, dicts,
NumPy arrays and torch tensors; ``check_function(fn, reference, cases)`` calls a
student's function and a reference on the same inputs. Both raise
``CheckFailed`` (an ``AssertionError``) with a message that says what differs
and where, so a failing exercise test reads like advice rather than a traceback.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any


class CheckFailed(AssertionError):
    """An answer differs from the reference; the message says how."""


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _is_array(x: Any) -> bool:
    return type(x).__module__ == "numpy" and hasattr(x, "shape") and hasattr(x, "dtype")


def _to_numpy(x: Any):
    import numpy as np

    if _is_tensor(x):
        x = x.detach().cpu()
        if str(x.dtype) in {"torch.bfloat16", "torch.float16"}:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _describe(x: Any) -> str:
    if _is_tensor(x):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if _is_array(x):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _compare_arrays(actual: Any, expected: Any, what: str, rtol: float, atol: float, check_dtype: bool) -> None:
    import numpy as np

    if _is_tensor(expected) and not _is_tensor(actual):
        raise CheckFailed(f"{what}: expected a torch tensor, got {type(actual).__name__} ({_describe(actual)}).")
    if check_dtype and (_is_tensor(actual) or _is_array(actual)) and str(actual.dtype) != str(expected.dtype):
        raise CheckFailed(f"{what}: dtype {actual.dtype} but expected {expected.dtype}.")
    a, e = _to_numpy(actual), _to_numpy(expected)
    if a.shape != e.shape:
        raise CheckFailed(f"{what}: shape {tuple(a.shape)} but expected {tuple(e.shape)}.")
    if e.dtype.kind in "biu" or a.dtype.kind in "biuUSO":
        wrong = np.argwhere(a != e)
        if len(wrong):
            idx = tuple(int(i) for i in wrong[0])
            raise CheckFailed(f"{what}: {len(wrong)} of {e.size} entries differ; first at index {idx}: got {a[idx]!r}, expected {e[idx]!r}.")
        return
    a, e = a.astype(np.float64), e.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if (nan_a & ~nan_e).any():
        idx = tuple(int(i) for i in np.argwhere(nan_a & ~nan_e)[0])
        raise CheckFailed(f"{what}: NaN at index {idx} where the reference has {e[idx]!r} (a division by zero or log of 0?).")
    close = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        diff = np.where(close, 0.0, np.abs(a - e))
        idx = np.unravel_index(int(np.nanargmax(diff)), diff.shape)
        idx = tuple(int(i) for i in idx)
        raise CheckFailed(
            f"{what}: {int((~close).sum())} of {e.size} values differ beyond rtol={rtol:g}, atol={atol:g}; "
            f"largest difference {diff[idx]:.3g} at index {idx}: got {a[idx]:.6g}, expected {e[idx]:.6g}."
        )


def _compare(actual: Any, expected: Any, what: str, rtol: float, atol: float, check_dtype: bool) -> None:
    if _is_tensor(expected) or _is_array(expected):
        _compare_arrays(actual, expected, what, rtol, atol, check_dtype)
    elif isinstance(expected, bool) or expected is None:
        if actual is not expected:
            raise CheckFailed(f"{what}: got {_describe(actual)}, expected {expected!r}.")
    elif isinstance(expected, (int, float)):
        if _is_tensor(actual) or _is_array(actual):
            if getattr(actual, "ndim", 0) != 0:
                raise CheckFailed(f"{what}: expected a single number, got {_describe(actual)}.")
            actual = actual.item()
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            raise CheckFailed(f"{what}: expected a number, got {type(actual).__name__} ({_describe(actual)}).")
        if isinstance(expected, int) and isinstance(actual, int):
            if actual != expected:
                raise CheckFailed(f"{what}: got {actual}, expected {expected}.")
        elif not math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol):
            raise CheckFailed(f"{what}: got {actual:.6g}, expected {expected:.6g} (difference {abs(actual - expected):.3g}).")
    elif isinstance(expected, str):
        if not isinstance(actual, str):
            raise CheckFailed(f"{what}: expected a string, got {type(actual).__name__} ({_describe(actual)}).")
        if actual != expected:
            at = next((i for i, (x, y) in enumerate(zip(actual, expected)) if x != y), min(len(actual), len(expected)))
            raise CheckFailed(f"{what}: strings differ from character {at}: got {actual[at:at + 30]!r}, expected {expected[at:at + 30]!r}.")
    elif isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            raise CheckFailed(f"{what}: expected a dict, got {type(actual).__name__}.")
        missing, extra = set(expected) - set(actual), set(actual) - set(expected)
        if missing or extra:
            raise CheckFailed(f"{what}: keys differ; missing {sorted(map(repr, missing))}, unexpected {sorted(map(repr, extra))}.")
        for key in expected:
            _compare(actual[key], expected[key], f"{what}[{key!r}]", rtol, atol, check_dtype)
    elif isinstance(expected, Sequence):
        if not isinstance(actual, Sequence) or isinstance(actual, str):
            raise CheckFailed(f"{what}: expected a {type(expected).__name__}, got {type(actual).__name__} ({_describe(actual)}).")
        if len(actual) != len(expected):
            raise CheckFailed(f"{what}: length {len(actual)} but expected {len(expected)}.")
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, f"{what}[{i}]", rtol, atol, check_dtype)
    elif actual != expected:
        raise CheckFailed(f"{what}: got {_describe(actual)}, expected {_describe(expected)}.")


def check(actual: Any, expected: Any, what: str = "your answer", *, rtol: float = 1e-5, atol: float = 1e-6,
          check_dtype: bool = True, quiet: bool = False) -> None:
    """Raise ``CheckFailed`` explaining how ``actual`` differs from ``expected``; print a tick when they agree.

    Floats (and float arrays/tensors) compare with ``rtol``/``atol``; integers, strings and
    booleans exactly. ``check_dtype`` also requires the same array/tensor dtype.
    """
    _compare(actual, expected, what, rtol, atol, check_dtype)
    if not quiet:
        print(f"\u2713 {what}")


def _call(fn: Callable, case: Any) -> Any:
    case = copy.deepcopy(case)  # neither side may see the other's in-place edits
    if isinstance(case, Mapping):
        return fn(**case)
    if isinstance(case, tuple):
        return fn(*case)
    return fn(case)


def check_function(fn: Callable, reference: Callable, cases: Iterable[Any], what: str | None = None, *,
                   rtol: float = 1e-5, atol: float = 1e-6, check_dtype: bool = True, quiet: bool = False) -> None:
    """Call ``fn`` and ``reference`` on every case and ``check`` that they agree.

    A case is a tuple of positional arguments, a dict of keyword arguments, or a single argument.
    """
    name = what or getattr(fn, "__name__", "your function")
    cases = list(cases)
    if not cases:
        raise ValueError("check_function needs at least one case (a tuple of arguments or a dict of keyword arguments).")
    for k, case in enumerate(cases):
        expected = _call(reference, case)
        try:
            actual = _call(fn, case)
        except NotImplementedError as exc:
            said = f" ({exc})" if str(exc) else ""
            raise CheckFailed(f"{name} is not implemented yet: replace its `raise NotImplementedError(...)` line with "
                              f"your code.{said}") from None
        except Exception as exc:
            raise CheckFailed(f"{name} raised {type(exc).__name__}: {exc} (case {k})") from exc
        _compare(actual, expected, f"{name}, case {k}", rtol, atol, check_dtype)
    if not quiet:
        print(f"\u2713 {name} agrees with the reference on {len(cases)} case(s)")
