"""The head every architecture shares: ``backbone -> fc -> shared -> classifier``.

Partial-weight aggregation exchanges only ``shared``; keeping one class for the head means
every architecture exposes it under the same attribute and parameter names
(``shared.weight``, ``shared.bias``) whatever its backbone.
"""

from __future__ import annotations

import torch
from torch import nn


class SharedHeadModel(nn.Module):
    """``backbone`` maps images to a flat feature vector of ``feature_dim`` values."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, shared_width: int, arch: str) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = backbone
        self.fc = nn.Linear(feature_dim, shared_width)
        self.shared = nn.Linear(shared_width, shared_width)
        self.classifier = nn.Linear(shared_width, num_classes)
        self.act = nn.ReLU()

    @property
    def shared_width(self) -> int:
        return self.shared.in_features

    def shared_input(self, x: torch.Tensor) -> torch.Tensor:
        """What enters ``shared``: the quantity that its gradient leaks."""
        return self.act(self.fc(torch.flatten(self.backbone(x), 1)))

    def forward_from_shared_input(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.act(self.shared(z)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from_shared_input(self.shared_input(x))
