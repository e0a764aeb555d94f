"""``--device auto|cpu|cuda`` for every stage: CUDA when present, a clear error when asked for and absent."""

from __future__ import annotations

import torch

from privfed.errors import PrivfedError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PrivfedError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise PrivfedError(f"--device {name!r} is not a device; use auto, cpu or cuda") from None
