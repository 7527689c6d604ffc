"""Validation of configuration values: every bad value fails at construction with one clear line."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field, the value and what is allowed."""


def _fail(field: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{field}={value!r} is invalid: {allowed}.")


def check_int(field: str, value: Any, minimum: int | None = None) -> int:
    """Require an ``int`` (not a bool) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field, value, f"expected an integer{'' if minimum is None else f' >= {minimum}'}")
    if minimum is not None and value < minimum:
        _fail(field, value, f"must be an integer >= {minimum}")
    return value


def check_float(
    field: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    finite: bool = True,
) -> float:
    """Require a real number inside the given bounds (``> minimum`` when ``strict_minimum``); never nan.

    Infinities are refused too unless ``finite`` is false: pass that only for a field whose docstring gives infinity
    a meaning (e.g. "no limit"), since elsewhere an infinite value only fails later, at the first update.
    """
    lower = "" if minimum is None else f"{'>' if strict_minimum else '>='} {minimum}"
    upper = "" if maximum is None else f"<= {maximum}"
    bounds = " and ".join(b for b in (lower, upper) if b)
    allowed = f"must be a {'finite ' if finite else ''}number{' ' + bounds if bounds else ''}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(field, value, allowed)
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range: as unusable as inf
        _fail(field, value, allowed)
    if math.isnan(number) or (finite and math.isinf(number)):
        _fail(field, value, allowed)
    if minimum is not None and (number <= minimum if strict_minimum else number < minimum):
        _fail(field, value, allowed)
    if maximum is not None and number > maximum:
        _fail(field, value, allowed)
    return number


def check_bool(field: str, value: Any) -> bool:
    """Require a ``bool``."""
    if not isinstance(value, bool):
        _fail(field, value, "expected true or false")
    return value


def check_choice(field: str, value: Any, choices: Iterable[str]) -> str:
    """Require one of the given strings."""
    choices = tuple(choices)
    if value not in choices:
        _fail(field, value, f"allowed values are {', '.join(repr(c) for c in choices)}")
    return value


def check_dims(field: str, value: Any) -> list[int]:
    """Require a non-empty sequence of positive layer widths."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        _fail(field, value, "expected a non-empty list of positive integers")
    dims = list(value)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        _fail(field, value, "expected a non-empty list of positive integers")
    return dims


def check_known_keys(section: str, cfg: dict, target: Callable, skip: Iterable[str] = ()) -> None:
    """Reject keys of ``cfg`` that are not keyword arguments of ``target`` (a class or function)."""
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = sorted(name for name in params if name not in set(skip) | {"self"})
    for key, value in cfg.items():
        if key not in allowed:
            fail_unknown_key(section, key, value, allowed, target.__name__)


def fail_unknown_key(section: str, key: Any, value: Any, allowed: Iterable[str], owner: str) -> None:
    """Raise the one-line error for a key that is not an option of ``owner``, with the closest allowed key."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    close = close or [name for name in allowed if str(key) in name][:1]
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(
        f"{section}.{key}={value!r} is invalid: not an option of {owner}{hint}; allowed: {', '.join(allowed)}."
    )
