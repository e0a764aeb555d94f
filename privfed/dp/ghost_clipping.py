"""Per-sample gradient norms of Linear and Conv2d weights without the per-sample gradients.

A layer computing ``out[t] = W a[t]`` over T positions (T = 1 for a Linear layer on a flat
input, T = output pixels for a convolution, ``a[t]`` its unfolded input patch of size d)
gives sample i the weight gradient ``sum_t g[t] a[t]^T`` (p x d). Its squared norm is

    sum_{s,t} (g[s] . g[t]) (a[s] . a[t])                       (ghost norm)

which costs ~T^2 (d + p) per sample instead of T d p for the gradient itself (Li et al.
2022, "Large Language Models Can Be Strong Differentially Private Learners",
https://arxiv.org/abs/2110.05679). Bu et al. ("Differentially Private Optimization on Large
Model at Small Cost", https://arxiv.org/abs/2210.00038; "mixed ghost clipping",
https://arxiv.org/abs/2205.10683) choose per layer whichever is cheaper, and never form the
clipped per-sample gradients at all: the clipped sum is one ordinary batch weight gradient
of the output gradients scaled by each sample's clip factor (book-keeping). The records
here keep ``(a, g)`` until the optimizer's step supplies those factors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from privfed.dp.clip_records import ClipRecord


#: Writing a per-sample gradient costs about this many multiply-adds per element (measured on
#: CPU: a batched product with T = 1 runs ~5x slower per multiply-add than with T >= 16).
WRITE_COST = 4


def prefer_ghost(positions: int, in_dim: int, out_dim: int) -> bool:
    """Factored (ghost norm + one batch weight gradient) cheaper than per-sample gradients?

    Per sample, the ghost norm costs ~T^2 (d + p) and the later weighted batch gradient
    T d p; the per-sample gradient costs T d p to compute and d p (x WRITE_COST) to store.
    The shared T d p cancels.
    """
    return positions * positions * (in_dim + out_dim) < WRITE_COST * in_dim * out_dim


def ghost_sq_norms(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(batch,) squared norms of sum_t g[:, t] a[:, t]^T, from a (batch, T, d) and g (batch, T, p)."""
    if a.shape[1] == 1:
        return a.pow(2).sum((1, 2)) * g.pow(2).sum((1, 2))
    gram_a = torch.bmm(a, a.transpose(1, 2))
    gram_g = torch.bmm(g, g.transpose(1, 2))
    return (gram_a * gram_g).sum((1, 2))


class FactoredLinear(ClipRecord):
    """A Linear weight kept as input a (batch, T, d) and output gradient g (batch, T, p)."""

    def __init__(self, weight: nn.Parameter, a: torch.Tensor, g: torch.Tensor) -> None:
        self.weight, self.a, self.g = weight, a, g
        self.sq_norms = ghost_sq_norms(a, g)

    def weighted_sum(self, weights: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        g = self.g * weights.to(self.g.dtype)[:, None, None]
        p, d = self.weight.shape
        return {self.weight: g.reshape(-1, p).t() @ self.a.reshape(-1, d)}


class FactoredConv2d(ClipRecord):
    """A Conv2d weight kept as input a (batch, C, H, W) and output gradient g (batch, p, Ho, Wo).

    The ghost norm runs on the unfolded input; the weighted sum is the library's batch
    weight gradient (``conv2d_weight``) of the scaled output gradients.
    """

    def __init__(self, layer: nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> None:
        self.layer, self.a, self.g = layer, a, g
        batch = a.shape[0]
        self.pointwise = layer.kernel_size == (1, 1) and layer.stride == (1, 1) and layer.padding == (0, 0)
        if self.pointwise:
            patches = a.reshape(batch, a.shape[1], -1)
        else:
            patches = F.unfold(a, layer.kernel_size, dilation=layer.dilation, padding=layer.padding, stride=layer.stride)
        self.sq_norms = ghost_sq_norms(patches.transpose(1, 2), g.reshape(batch, g.shape[1], -1).transpose(1, 2))

    def weighted_sum(self, weights: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        layer = self.layer
        g = self.g * weights.to(self.g.dtype)[:, None, None, None]
        if self.pointwise:  # one matrix product; the library's conv weight gradient is slower here
            batch, cin = self.a.shape[:2]
            grad = torch.einsum("bpt,bct->pc", g.reshape(batch, g.shape[1], -1), self.a.reshape(batch, cin, -1))
            return {layer.weight: grad.view_as(layer.weight)}
        grad = torch.nn.grad.conv2d_weight(
            self.a, layer.weight.shape, g, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
            groups=layer.groups,
        )
        return {layer.weight: grad}
