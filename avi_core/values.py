"""Checking settings and parsing lists of values, the same way for every method and front end.

`parse_number_list("0, 0.25, 0.5")` reads the sweep lists of every node and option (rho lists, strength
lists, distance lists); `check_range` refuses a value outside its stated range. Both raise ParameterError
naming the setting, the value and the range, so the front ends only add where to change it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from .errors import ParameterError

_SEPARATORS = re.compile(r"[,;\s]+")


def check_range(name: str, value: float, low: float, high: float) -> float:
    """`value` as a float when `low <= value <= high` (and finite), else ParameterError(name, value, low, high)."""
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ParameterError(
            f"{name} = {value:g} is outside the supported range {low:g}..{high:g}",
            reason="range",
            name=name,
            value=number,
            low=low,
            high=high,
        )
    return number


def parse_number_list(text: str, name: str, low: float = -math.inf, high: float = math.inf) -> list[float]:
    """'0, 0.25, 0.5' -> [0.0, 0.25, 0.5]; '' (or only separators) -> [].

    Commas, semicolons or white space separate values. Every value must be a finite number within
    [low, high]; otherwise ParameterError naming the list (`name`) and the bad entry.
    """
    values = []
    for part in (p for p in _SEPARATORS.split(text.strip()) if p):
        try:
            value = float(part)
        except ValueError:
            raise ParameterError(
                f"{name}: {part!r} is not a number", reason="list", name=name, value=part, low=low, high=high
            ) from None
        if not math.isfinite(value):
            raise ParameterError(
                f"{name}: {part!r} is not a finite number", reason="list", name=name, value=part, low=low, high=high
            )
        values.append(check_range(name, value, low, high))
    return values


def values_or_default(text: str, name: str, default: float, low: float, high: float) -> list[float]:
    """The list in `text`, or [default] when it is empty: the rule of every sweep input (list beats slider)."""
    return parse_number_list(text, name, low, high) or [check_range(name, default, low, high)]


def format_values(values: Sequence[float]) -> str:
    """[0.0, 0.5, 1.0] -> '0, 0.5, 1'."""
    return ", ".join(f"{v:g}" for v in values)
