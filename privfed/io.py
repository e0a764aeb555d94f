"""Atomic, pickle-free reading and writing of run-directory files.

Every file is written to a temporary name in the same folder and renamed into place, so a
killed process never leaves a half-written JSON or tensor file. Tensors are stored only as
safetensors: loading one never runs code, which matters for run directories shared by
others.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privfed.errors import PrivfedError

if TYPE_CHECKING:  # torch/safetensors are imported lazily: JSON-only readers (reports) must not load torch
    import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; shared run directories need the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_temp_files(folder: str | os.PathLike) -> int:
    """Delete the temporary files a killed writer left under ``folder``; returns how many.

    They are ``.<name>.<random>.tmp`` (see :func:`atomic_write_bytes`): never read by
    anyone, so removing them only reclaims space.
    """
    removed = 0
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(value: Any) -> Any:
    """Replace NaN/inf (invalid JSON) by null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(_jsonable(obj), indent=indent, sort_keys=False, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one line by rewriting the file atomically (files stay small: one line a round)."""
    path = Path(path)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, existing + dumps_json(obj, indent=None) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise PrivfedError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PrivfedError(f"{path}: not valid JSON ({exc}); the file is damaged, rerun the step that writes it") from None


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    path = Path(path)
    if not path.is_file():
        raise PrivfedError(f"{path}: file not found")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise PrivfedError(f"{path}:{number}: not valid JSON ({exc})") from None
    return rows


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    from safetensors.torch import save

    contiguous = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=dict(metadata) if metadata else None))


#: refuse headers larger than this (safetensors' own limit is 100 MB; ours are a few KB)
MAX_HEADER_BYTES = 100_000_000


def safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a safetensors header without loading tensors or torch.

    The file must be exactly the format: an 8-byte little-endian header length, a JSON
    object of ``{name: {dtype, shape, data_offsets}}`` (plus ``__metadata__``) and the data
    those offsets cover. Anything else, in particular a pickle or a torch.save zip planted
    under a ``.safetensors`` name, is refused unread: privfed never unpickles.
    """
    path = Path(path)
    if not path.is_file():
        raise PrivfedError(f"{path}: file not found")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise PrivfedError(f"{path}: refused: this is a pickle/zip file, not safetensors; privfed never unpickles files. "
                               "Delete it and rerun the step that writes it")
        if len(head) < 8:
            raise PrivfedError(f"{path}: not a valid safetensors file (only {size} bytes); rerun the step that writes it")
        length = int.from_bytes(head, "little")
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise PrivfedError(f"{path}: not a valid safetensors file (bad header length); privfed reads only safetensors tensors. "
                               "Delete it and rerun the step that writes it")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise PrivfedError(f"{path}: not a valid safetensors file (header is not a JSON object); rerun the step that writes it")
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(v, int) for v in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise PrivfedError(f"{path}: not a valid safetensors file (tensor {name!r} lies outside the file); rerun the step that writes it")
    return header


def tensor_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (empty when it has none)."""
    metadata = safetensors_header(path).get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; anything else (a pickle under a checkpoint name) is refused unread."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    safetensors_header(path)
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise PrivfedError(f"{path}: not a valid safetensors file ({exc})") from None
