"""Number formatting shared by the views and templates (registered as jinja2 filters).

One rule for units, so a reader never has to guess: a figure and its interval are written
in the same unit ("42% [31%, 55%]", "+1.2 dB [-0.3, +2.7]", "AUC 0.55 [0.49, 0.61]").
Every function accepts whatever a JSON file held; an absent value prints as "not measured"
(or an em dash where a cell only repeats a missing number), never as a zero that would read
as "perfectly private". Strings returned here are still HTML-escaped by the template.
"""

from __future__ import annotations

from typing import Any

from reports.load import as_float

MISSING = "—"
NOT_MEASURED = "not measured"

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: Any) -> str:
    """1536 -> '1.50 KiB' (binary units, as network and file sizes are counted)."""
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


def _pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = as_float(value[0]), as_float(value[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _percent(number: float, digits: int | None) -> str:
    """Whole percent, unless a figure is below 10%: then one decimal (a 0.4% TPR is not 0%)."""
    if digits is None:
        digits = 1 if 0 < abs(number) < 0.1 else 0
    return f"{100 * number:.{digits}f}%"


def pct(value: Any, digits: int | None = None) -> str:
    """A fraction in [0, 1] as a percentage: 0.912 -> '91%', 0.004 -> '0.4%' (digits fixes the decimals)."""
    number = as_float(value)
    return MISSING if number is None else _percent(number, digits)


def pct_interval(value: Any, digits: int | None = None) -> str:
    """[0.31, 0.55] -> '[31%, 55%]' (empty when there is no interval)."""
    pair = _pair(value)
    return f"[{_percent(pair[0], digits)}, {_percent(pair[1], digits)}]" if pair else ""


def pct_ci(value: Any, ci: Any, digits: int | None = None) -> str:
    """'42% [31%, 55%]'; 'not measured' without a value."""
    if as_float(value) is None:
        return NOT_MEASURED
    return (pct(value, digits) + " " + pct_interval(ci, digits)).strip()


def signed(number: float) -> str:
    """'+1.2', '-0.6'; a non-zero figure that would print as '-0.0' gets a second decimal ('-0.05'),
    so an interval ending just below 0 does not read as touching it."""
    text = f"{number:+.1f}"
    return f"{number:+.2f}" if number != 0 and text in ("+0.0", "-0.0") else text


def db(value: Any) -> str:
    """A gain in decibels with its sign: 1.24 -> '+1.2 dB'."""
    number = as_float(value)
    return NOT_MEASURED if number is None else f"{signed(number)} dB"


def db_interval(value: Any) -> str:
    pair = _pair(value)
    return f"[{signed(pair[0])}, {signed(pair[1])}]" if pair else ""


def db_ci(value: Any, ci: Any) -> str:
    """'+1.2 dB [-0.3, +2.7]'; 'not measured' without a value; notes a missing interval."""
    if as_float(value) is None:
        return NOT_MEASURED
    interval_text = db_interval(ci)
    return f"{db(value)} {interval_text}" if interval_text else f"{db(value)} (no interval: one image)"


def interval(value: Any, digits: int = 2) -> str:
    """[lo, hi] -> '[0.51, 0.60]' (empty when there is no interval)."""
    pair = _pair(value)
    return f"[{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]" if pair else ""


def auc_ci(value: Any, ci: Any) -> str:
    """'0.55 [0.49, 0.61]'; 'not measured' without a value."""
    if as_float(value) is None:
        return NOT_MEASURED
    return f"{as_float(value):.2f} {interval(ci)}".strip()


def epsilon(value: Any, dp_level: str | None = "none") -> str:
    """A DP epsilon: 'no DP' for runs without DP, 'not measured' when the file has none."""
    if dp_level in (None, "", "none", "None"):
        return "no DP"
    number = as_float(value)
    return NOT_MEASURED if number is None else f"{number:.2f}"


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


def count(value: Any) -> str:
    """1347 -> '1,347'."""
    number = as_float(value)
    return MISSING if number is None else f"{int(number):,}"


FILTERS = {"bytes": human_bytes, "num": num, "pct": pct, "pct_interval": pct_interval, "pct_ci": pct_ci,
           "db": db, "db_ci": db_ci, "ci": interval, "auc_ci": auc_ci, "epsilon": epsilon, "text": text, "count": count}
