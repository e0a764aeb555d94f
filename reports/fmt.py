"""Number formatting shared by the templates (registered as jinja2 filters).

Every function accepts whatever a JSON file held and returns a short plain string; an
absent or non-numeric value prints as an em dash so a missing field never breaks a report.
Strings returned here are still HTML-escaped by the template (autoescape is on).
"""

from __future__ import annotations

from typing import Any

from reports.load import as_float

MISSING = "—"

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: Any) -> str:
    """1536 -> '1.5 KiB' (binary units, as network and file sizes are counted)."""
    number = as_float(value)
    if number is None:
        return MISSING
    sign = "-" if number < 0 else ""
    number = abs(number)
    unit = 0
    while number >= 1024 and unit < len(_UNITS) - 1:
        number /= 1024
        unit += 1
    if unit == 0:
        return f"{sign}{int(number)} B"
    digits = 2 if number < 10 else 1 if number < 100 else 0
    return f"{sign}{number:.{digits}f} {_UNITS[unit]}"


def num(value: Any, digits: int = 3) -> str:
    number = as_float(value)
    if number is None:
        return MISSING
    if number != 0 and (abs(number) >= 1e5 or abs(number) < 10 ** (-digits)):
        return f"{number:.{max(digits - 1, 1)}e}"
    return f"{number:.{digits}f}"


def pct(value: Any, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage: 0.912 -> '91.2%'."""
    number = as_float(value)
    return MISSING if number is None else f"{100 * number:.{digits}f}%"


def interval(value: Any, digits: int = 3) -> str:
    """[lo, hi] -> '[0.512, 0.604]'."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = as_float(value[0]), as_float(value[1])
        if lo is not None and hi is not None:
            return f"[{lo:.{digits}f}, {hi:.{digits}f}]"
    return ""


def text(value: Any) -> str:
    """Any JSON value as short display text (lists joined by commas)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(text(v) for v in value) if value else MISSING
    if isinstance(value, dict):
        return ", ".join(f"{k}={text(v)}" for k, v in value.items()) if value else MISSING
    return str(value)


FILTERS = {"bytes": human_bytes, "num": num, "pct": pct, "ci": interval, "text": text}
