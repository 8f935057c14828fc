"""Student-facing checks agree with NumPy's and torch's own comparisons and explain differences."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.grading import CheckFailed, check, check_function


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8), st.floats(-1e-3, 1e-3))
def test_check_agrees_with_torch_allclose(values, shift):
    expected = torch.tensor(values, dtype=torch.float64)
    actual = expected + shift
    agrees = torch.allclose(actual, expected, rtol=1e-5, atol=1e-6)
    if agrees:
        check(actual, expected, quiet=True)
    else:
        with pytest.raises(CheckFailed):
            check(actual, expected, quiet=True)


def test_messages_name_shape_dtype_and_worst_entry():
    with pytest.raises(CheckFailed, match=r"shape \(2, 3\) but expected \(3, 2\)"):
        check(torch.zeros(2, 3), torch.zeros(3, 2), "scores", quiet=True)
    with pytest.raises(CheckFailed, match="dtype torch.float64 but expected torch.float32"):
        check(torch.zeros(2, dtype=torch.float64), torch.zeros(2), quiet=True)
    expected = np.arange(6.0).reshape(2, 3)
    actual = expected.copy()
    actual[1, 2] += 0.5
    with pytest.raises(CheckFailed, match=r"1 of 6 values differ.*index \(1, 2\): got 5.5, expected 5"):
        check(actual, expected, quiet=True)
    with pytest.raises(CheckFailed, match="NaN at index"):
        check(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), quiet=True)
    with pytest.raises(CheckFailed, match="expected a torch tensor"):
        check([0.0, 1.0], torch.tensor([0.0, 1.0]), quiet=True)


def test_exact_types_and_containers():
    check({"a": [1, 2], "b": "xy"}, {"a": [1, 2], "b": "xy"}, quiet=True)
    with pytest.raises(CheckFailed, match=r"\['b'\]: strings differ from character 1"):
        check({"a": [1, 2], "b": "xz"}, {"a": [1, 2], "b": "xy"}, quiet=True)
    with pytest.raises(CheckFailed, match="got 3, expected 4"):
        check(3, 4, quiet=True)
    with pytest.raises(CheckFailed, match="length 1 but expected 2"):
        check([1], [1, 2], quiet=True)
    with pytest.raises(CheckFailed, match="expected a number"):
        check("1.0", 1.0, quiet=True)
    with pytest.raises(CheckFailed, match="2 of 3 entries differ"):
        check(torch.tensor([1, 0, 0]), torch.tensor([1, 2, 3]), quiet=True)


def test_check_function_against_reference(capsys):
    cases = [(torch.randn(3, 4),), {"x": torch.randn(2, 5), "dim": 0}]
    check_function(lambda x, dim=-1: torch.softmax(x, dim), torch.softmax, [(c[0], -1) if isinstance(c, tuple) else c for c in cases])
    assert "agrees with the reference on 2 case(s)" in capsys.readouterr().out

    def unsolved(x, dim=-1):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_function(unsolved, torch.softmax, [(torch.randn(2), 0)])

    def wrong(x, dim=-1):  # forgets to subtract the max: overflows to inf/nan
        e = torch.exp(x)
        return e / e.sum(dim, keepdim=True)

    with pytest.raises(CheckFailed, match="case 0: NaN"):
        check_function(wrong, torch.softmax, [(torch.tensor([1000.0, 0.0]), -1)], quiet=True)

    def mutating_reference(x, dim=-1):  # edits its input in place: fn must still see the original
        out = torch.softmax(x, dim)
        x.mul_(2)
        return out

    check_function(torch.softmax, mutating_reference, [(torch.tensor([1.0, 2.0]), 0)], quiet=True)
    with pytest.raises(ValueError, match="at least one case"):
        check_function(torch.softmax, torch.softmax, [])
