"""Parsing of quantities written with units in scenario files ("5min", "7d", "40ms", "10e6")."""

from __future__ import annotations

import re

_DURATION_UNITS_S = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


def parse_duration_s(value: object) -> float:
    """Return seconds from a number (already seconds) or a string like '5min', '7d', '40ms'.

    Raises ValueError with the accepted units on anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(f"cannot read duration {value!r}: write a number and a unit, e.g. '5min'")
        number, unit = m.groups()
        unit = unit or "s"
        if unit not in _DURATION_UNITS_S:
            units = ", ".join(_DURATION_UNITS_S)
            raise ValueError(f"unknown duration unit {unit!r} in {value!r} (accepted: {units})")
        seconds = float(number) * _DURATION_UNITS_S[unit]
    else:
        raise ValueError(f"expected a duration such as '5min', got {type(value).__name__}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds
