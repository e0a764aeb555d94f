"""What one layer leaves behind after the backward pass, for per-sample clipping.

Book-keeping (Bu et al. 2023, "Differentially Private Optimization on Large Model at Small
Cost", https://arxiv.org/abs/2210.00038) needs two things from every layer: each sample's
squared gradient norm (to compute the clip factors, which depend on all layers), and later
the clip-weighted sum of the per-sample gradients. A record answers both, in whichever form
is cheapest for its layer: per-sample gradients when they are small
(:class:`PerSampleGradients`), or the layer's input and output gradient when the
per-sample gradients would be large and one weighted batch gradient is cheaper (the
``Factored*`` records of :mod:`privfed.dp.layer_rules`).

Norms and sums are of the gradients of the *summed* loss, up to the factor the engine
passes in (``loss_reduction="mean"`` scales each sample's gradient by the batch size).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class ClipRecord(ABC):
    """One layer's contribution to a DP-SGD step."""

    #: (batch,) squared L2 norm of each sample's gradient over this layer's trainable parameters
    sq_norms: torch.Tensor

    @abstractmethod
    def weighted_sum(self, weights: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        """sum_i weights[i] * (sample i's gradient), per parameter, shaped like the parameter."""


class PerSampleGradients(ClipRecord):
    """Materialised per-sample gradients {parameter: (batch, *parameter.shape)}."""

    def __init__(self, grads: dict[nn.Parameter, torch.Tensor]) -> None:
        self.grads = {p: g.reshape(g.shape[0], -1) for p, g in grads.items()}
        self.sq_norms = sum(g.pow(2).sum(1) for g in self.grads.values())

    def weighted_sum(self, weights: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        return {p: (weights.to(g.dtype) @ g).view_as(p) for p, g in self.grads.items()}


class CombinedRecord(ClipRecord):
    """Several records of one layer (e.g. factored weight, per-sample bias), norms added."""

    def __init__(self, parts: list[ClipRecord]) -> None:
        self.parts = parts
        self.sq_norms = sum(part.sq_norms for part in parts)

    def weighted_sum(self, weights: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        out: dict[nn.Parameter, torch.Tensor] = {}
        for part in self.parts:
            out.update(part.weighted_sum(weights))
        return out
