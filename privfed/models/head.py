"""The head every architecture shares: ``backbone -> fc -> shared -> classifier``.

Partial-weight aggregation exchanges only ``shared``; keeping one class for the head means
every architecture exposes it under the same attribute and parameter names
(``shared.weight``, ``shared.bias``) whatever its backbone.
"""

from __future__ import annotations

import torch
from torch import nn


def he_init(layer: nn.Module) -> None:
    """He et al. (2015) initialisation for a layer followed by ReLU, zero bias.

    PyTorch's default (Kaiming-uniform with a = sqrt(5)) shrinks the signal about 1.7x per
    layer: the seed's `simple` net started with logits that barely depend on the image (a
    spread of 0.003 across 200 MRI slices against an offset of 0.04, i.e. one class for every
    image, and features of scale 0.05). Training rescales the weights quickly without DP; under
    DP-SGD the first rounds stayed at one class. With He scaling the net starts with features
    of unit scale (logit spread 0.2 with the small classifier below).
    """
    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


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
        for layer in (self.fc, self.shared):
            he_init(layer)
        # A small classifier: the features start with unit scale, the decision starts unbiased.
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

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
