"""Embed PNG files as ``data:`` URIs, safely.

A report must open offline and must not be a channel for whatever a run directory holds,
so an image is embedded only when (1) its path, taken from an attack JSON, stays inside the
run's ``attacks/`` folder, (2) its bytes start with the PNG signature, and (3) the URI is
built here from bytes we base64-encode ourselves (never from a string found in a file).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Larger images are not embedded (a report should stay small enough to e-mail).
MAX_PNG_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Embedded:
    """An image ready for ``<img src=...>`` or the reason it could not be embedded."""

    uri: str | None
    problem: str | None = None


def is_png(data: bytes) -> bool:
    return data[: len(PNG_SIGNATURE)] == PNG_SIGNATURE


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for bytes that are a PNG; ValueError otherwise."""
    if not is_png(data):
        raise ValueError("not a PNG (bad signature)")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def embed_png(base: Path, relative: object) -> Embedded:
    """Embed ``base / relative`` if it is a PNG file inside ``base``; else say why not."""
    if not isinstance(relative, str) or not relative:
        return Embedded(None, "no image file named")
    base_resolved = base.resolve()
    try:
        path = (base / relative).resolve()
    except (OSError, RuntimeError):
        return Embedded(None, "image path cannot be resolved")
    if not path.is_relative_to(base_resolved):
        return Embedded(None, "image path points outside the run's attacks folder; not embedded")
    if not path.is_file():
        return Embedded(None, "image file missing")
    if path.stat().st_size > MAX_PNG_BYTES:
        return Embedded(None, "image file too large to embed")
    data = path.read_bytes()
    if not is_png(data):
        return Embedded(None, "file is not a PNG; not embedded")
    return Embedded(png_data_uri(data))
