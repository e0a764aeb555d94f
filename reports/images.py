"""Read PNG files from a run safely, and turn PNG bytes into ``data:`` URIs.

A report must open offline and must not be a channel for whatever a run directory holds,
so an image is used only when (1) its path, taken from an attack JSON, stays inside the
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
    """An image ready for ``<img src=...>`` (with its pixel size) or the reason it could not be embedded."""

    uri: str | None
    problem: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class PngFile:
    """The bytes of a PNG read from a run, or why it could not be read."""

    data: bytes | None
    problem: str | None = None


def is_png(data: bytes) -> bool:
    return data[: len(PNG_SIGNATURE)] == PNG_SIGNATURE


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the IHDR chunk that follows the signature, or None if it is not there."""
    if not is_png(data) or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _embedded(data: bytes) -> Embedded:
    size = png_size(data) or (None, None)
    return Embedded(png_data_uri(data), None, *size)


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for bytes that are a PNG; ValueError otherwise."""
    if not is_png(data):
        raise ValueError("not a PNG (bad signature)")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def read_png(base: Path, relative: object) -> PngFile:
    """The bytes of ``base / relative`` if it is a PNG file inside ``base``; else say why not."""
    if not isinstance(relative, str) or not relative:
        return PngFile(None, "no image file named")
    base_resolved = base.resolve()
    try:
        path = (base / relative).resolve()
    except (OSError, RuntimeError):
        return PngFile(None, "image path cannot be resolved")
    if not path.is_relative_to(base_resolved):
        return PngFile(None, "image path points outside the run's attacks folder; not embedded")
    if not path.is_file():
        return PngFile(None, "image file missing")
    if path.stat().st_size > MAX_PNG_BYTES:
        return PngFile(None, "image file too large to embed")
    data = path.read_bytes()
    if not is_png(data):
        return PngFile(None, "file is not a PNG; not embedded")
    return PngFile(data)


def embed_png(base: Path, relative: object) -> Embedded:
    """Embed ``base / relative`` if it is a PNG file inside ``base``; else say why not."""
    found = read_png(base, relative)
    return _embedded(found.data) if found.data is not None else Embedded(None, found.problem)


def read_attack_png(run_path: Path, relative: object) -> PngFile:
    """Image paths in attack JSONs are relative to ``attacks/``; run-relative ones are accepted too."""
    found = read_png(run_path / "attacks", relative)
    if found.data is None and found.problem == "image file missing":
        fallback = read_png(run_path, relative)
        if fallback.data is not None:
            return fallback
    return found


def embed_attack_png(run_path: Path, relative: object) -> Embedded:
    found = read_attack_png(run_path, relative)
    return _embedded(found.data) if found.data is not None else Embedded(None, found.problem)
