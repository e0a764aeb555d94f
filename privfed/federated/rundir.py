"""Paths and writers of the run directory (docs/run-directory.md is the contract).

Kept apart from the round logic so the names live in one place; readers (attacks,
reports) rely on them, so change them only together with the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from privfed.io import save_tensors


def payload_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Bytes on the wire for a tensor payload: sum of numel * element_size (no framing)."""
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu").clone() for name, tensor in module.state_dict().items()}


class RunDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.json")
    split = property(lambda self: self.root / "split.json")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    summary = property(lambda self: self.root / "summary.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    checkpoint_state = property(lambda self: self.root / "checkpoints" / "state.json")

    def init(self, name: str) -> Path:
        return self.root / "init" / f"{name}.safetensors"

    def observed(self, server_round: int) -> Path:
        return self.root / "observed" / f"round_{server_round}"

    def oracle(self, server_round: int) -> Path:
        return self.root / "oracle" / f"round_{server_round}"

    def model(self, name: str) -> Path:
        return self.root / "models" / f"{name}.safetensors"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / f"{name}.safetensors"

    def pending_checkpoint(self, name: str) -> Path:
        """Where a checkpoint waits until checkpoints/state.json names its round (see engine)."""
        return self.checkpoints / "pending" / f"{name}.safetensors"

    def save(self, path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
        save_tensors(path, tensors, metadata)
