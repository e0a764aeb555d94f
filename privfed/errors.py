"""One exception type for every user-facing failure.

The CLI turns a :class:`PrivfedError` into one ``error: ...`` line on stderr and exit
code 2, so library code raises it with a message that names the file or option at
fault and what to do, and never prints.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PrivfedError(Exception):
    """A problem the user can fix (bad path, bad option, incompatible file)."""


def closest(name: str, valid: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""
