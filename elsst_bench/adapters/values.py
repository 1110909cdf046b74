"""The checks of single option values, one line each on failure (an :class:`~elsst_bench.errors.AdapterError` naming
the option and the method): what every method config (:mod:`.configs`, :mod:`.tuner_configs`) validates with."""

from __future__ import annotations

import math
import operator
from typing import Any, Iterable

from ..errors import AdapterError


def positive_number(value: Any, method: str, option: str) -> float:
    """``value`` if it is a finite number > 0 (ints stay ints), else AdapterError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise AdapterError(f"option {option} of adapter '{method}' must be a positive number, got {value!r}")
    return float(value) if not isinstance(value, int) else value


def positive_int(value: Any, what: str) -> int:
    """``value`` as an int ≥ 1, else AdapterError naming ``what``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise AdapterError(f"{what} must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise AdapterError(f"{what} must be a positive integer, got {value!r}")
    return number


def choice(value: Any, allowed: Iterable[str], method: str, option: str) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise AdapterError(f"option {option} of adapter '{method}' must be one of {', '.join(allowed)}, got {value!r}")
    return value


def integer(value: Any, method: str, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdapterError(f"option {option} of adapter '{method}' must be an integer, got {value!r}")
    return value


def boolean(value: Any, method: str, option: str) -> bool:
    if not isinstance(value, bool):
        raise AdapterError(f"option {option} of adapter '{method}' must be true or false, got {value!r}")
    return value
