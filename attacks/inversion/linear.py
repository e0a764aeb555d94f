"""Analytic recovery of what entered a linear layer, from its weight and bias update.

For ``y = W x + b`` and one sample, dL/dW = delta x^T and dL/db = delta, so every row with
``delta_i != 0`` gives ``x = dW_i / db_i`` exactly (Phong et al. 2017,
https://eprint.iacr.org/2017/715; Geiping et al. 2020, proposition 3.1). An update over
several SGD steps is ``-lr * sum_t g_t``: the scale cancels in the ratio. We use the least
squares solution over rows, ``x = sum_i db_i dW_i / sum_i db_i^2``, which weights rows by
their signal and is robust to noise (DP).

With several samples each row mixes them: ``dW_i = sum_n delta_ni x_n``. Rows where only one
sample has a non-zero ``delta`` (ReLU after the layer makes this common) still give that
sample exactly, and all such rows agree. :func:`recover_linear_inputs` disaggregates by
clustering the per-row ratios by cosine similarity (as in the "trap weights"/"robbing the
fed" analyses of Fowl et al. 2022, https://arxiv.org/abs/2110.13057) and keeps the ``n``
largest clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LinearRecovery:
    inputs: torch.Tensor  # n x in_features
    rows: list[torch.Tensor]  # the rows of the layer each input was read from
    clusters_found: int  # how many distinct inputs the rows supported (<= n)


def least_squares_input(weight_update: torch.Tensor, bias_update: torch.Tensor) -> torch.Tensor:
    """``sum_i db_i dW_i / sum_i db_i^2``: exact for one sample, robust to noise."""
    db = bias_update.double()
    denominator = db.pow(2).sum()
    if float(denominator) == 0.0:
        return torch.zeros(weight_update.shape[1], dtype=weight_update.dtype, device=weight_update.device)
    return ((db[:, None] * weight_update.double()).sum(0) / denominator).to(weight_update.dtype)


def recover_linear_inputs(
    weight_update: torch.Tensor,
    bias_update: torch.Tensor,
    num: int,
    similarity: float = 0.995,
    min_signal: float = 1e-3,
) -> LinearRecovery:
    """Recover up to ``num`` inputs of a linear layer from its update (see module docstring)."""
    all_rows = torch.arange(bias_update.numel(), device=bias_update.device)
    if num <= 1:
        return LinearRecovery(least_squares_input(weight_update, bias_update)[None], [all_rows], 1)
    db = bias_update.double()
    strong = torch.nonzero(db.abs() > min_signal * db.abs().max()).flatten()
    if strong.numel() == 0:
        zeros = torch.zeros(num, weight_update.shape[1], dtype=weight_update.dtype, device=weight_update.device)
        return LinearRecovery(zeros, [all_rows] * num, 0)
    ratios = weight_update.double()[strong] / db[strong, None]
    unit = ratios / ratios.norm(dim=1, keepdim=True).clamp(min=1e-30)
    cosine = unit @ unit.t()
    order = torch.argsort(db[strong].abs(), descending=True)
    unassigned = torch.ones(strong.numel(), dtype=torch.bool, device=db.device)
    clusters: list[torch.Tensor] = []
    for seed in order.tolist():
        if not unassigned[seed]:
            continue
        members = torch.nonzero(unassigned & (cosine[seed] >= similarity)).flatten()
        unassigned[members] = False
        clusters.append(members)
    clusters.sort(key=lambda m: (-m.numel(), -float(db[strong][m].abs().sum())))
    chosen = [c for c in clusters if c.numel() >= 2][:num] or clusters[:1]
    inputs, rows = [], []
    for members in chosen:
        idx = strong[members]
        inputs.append(least_squares_input(weight_update[idx], bias_update[idx]))
        rows.append(idx)
    found = len(inputs)
    while len(inputs) < num:  # not enough pure rows: fall back on the least-squares mixture
        inputs.append(least_squares_input(weight_update, bias_update))
        rows.append(all_rows)
    return LinearRecovery(torch.stack(inputs), rows, found)
