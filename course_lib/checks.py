"""Field checks for config dataclasses: an error names the config, the field, the value and what is allowed."""

from __future__ import annotations


def check_int(owner: str, name: str, value, low: int, high: int | None = None) -> None:
    """``value`` must be an int (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{owner}.{name}={value!r}: must be {allowed}.")


def check_number(owner: str, name: str, value, low: float, high: float | None = None, low_open: bool = False) -> None:
    """``value`` must be a real number (not a bool) above ``low`` (or equal, unless ``low_open``) and <= ``high``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value == value
    ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        lower = f"> {low}" if low_open else f">= {low}"
        allowed = f"a number {lower}" + ("" if high is None else f" and <= {high}")
        raise ValueError(f"{owner}.{name}={value!r}: must be {allowed}.")


def check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name}={value!r}: expected one of {sorted(choices)}.")
