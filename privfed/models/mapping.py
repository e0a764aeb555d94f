"""F and F^-1 of partial-weight aggregation: a client's w x w ``shared`` layer <-> common h x h form.

F must be known to both sides and invertible on its range. For w == h it is the identity.
For w != h we use a fixed matrix Q (h x w) drawn from the run's seed: with orthonormal
columns when w < h (an isometric embedding, so F^-1(F(W)) = W exactly), and orthonormal
rows when w > h (a projection onto an h-dimensional subspace; F^-1(F(W)) is then the
best rank-h approximation of W in that subspace). Because Q is orthonormal, Frobenius
norms and hence aggregation weights are not distorted.

  F(W) = Q W Q^T,  F(b) = Q b;    F^-1(B) = Q^T B Q,  F^-1(c) = Q^T c.

Lives beside the models (not in the engine) because attackers, who may not import the
engine, apply the same map.
"""

from __future__ import annotations

import torch


def embedding_matrix(width: int, common_width: int, seed: int) -> torch.Tensor:
    """Q (common_width x width) with orthonormal columns (width <= h) or rows (width > h)."""
    if width == common_width:
        return torch.eye(width)
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + width * 7919 + common_width)
    big, small = max(width, common_width), min(width, common_width)
    gaussian = torch.randn(big, small, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)  # big x small, orthonormal columns
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # unique QR: deterministic signs
    q = q.to(torch.float32)
    return q if width < common_width else q.T.contiguous()


def to_common(weight: torch.Tensor, bias: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """F: client layer (w x w, w) -> common (h x h, h)."""
    q = q.to(weight)
    return q @ weight @ q.T, q @ bias


def from_common(weight: torch.Tensor, bias: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """F^-1: common (h x h, h) -> client layer (w x w, w)."""
    q = q.to(weight)
    return q.T @ weight @ q, q.T @ bias
