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
clustering the per-row ratios (as in the "trap weights"/"robbing the fed" analyses of Fowl et
al. 2022, https://arxiv.org/abs/2110.13057) and keeps the ``n`` largest clusters.

Pure rows of one sample agree to the float precision of the update, while a mixed row is
only close to them: ReLU features of two brain slices have cosine similarity near 0.99. So
the clusters are first formed at a relative distance of 1e-4 (pure rows only), and the
tolerance is widened (to 1e-3, 1e-2, then 0.1, which is the old cosine 0.995) only while
fewer than ``n`` inputs are supported, as happens under DP noise or over several local
steps. Measured at 64x64, batch 4 (`simple`, one step): the loose clustering returned fc
inputs at cosine 0.995 and norms 0.79-1.05 of the truth; the tight one returns them exactly.
Where the output gradient factorises per sample (the shared layer before a two-class head),
rows with the same set of active samples share one ratio, so mixtures cluster tightly too;
they are told apart by their supports (:func:`_minimal_supports`). Measured on the shared
layer at batch 4: relative error 0.14 -> 2e-8.
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
    tolerances: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 0.1),
    min_signal: float = 1e-3,
    one_step: bool = True,
) -> LinearRecovery:
    """Recover up to ``num`` inputs of a linear layer from its update (see module docstring).

    ``one_step=False`` (an observed round of many, possibly Adam, steps: no row is any one
    sample's input) clusters once at cosine 0.995 with no support filter, as before the tight
    tolerances: Adam's per-coordinate normalisation makes garbage rows agree tightly (quick
    study, FedAvg's observed round restricted to `shared`: 17.3 dB with this, 14.5 dB with
    the one-step clustering).
    """
    all_rows = torch.arange(bias_update.numel(), device=bias_update.device)
    if num <= 1:
        return LinearRecovery(least_squares_input(weight_update, bias_update)[None], [all_rows], 1)
    db = bias_update.double()
    strong = torch.nonzero(db.abs() > min_signal * db.abs().max()).flatten()
    if strong.numel() == 0:
        zeros = torch.zeros(num, weight_update.shape[1], dtype=weight_update.dtype, device=weight_update.device)
        return LinearRecovery(zeros, [all_rows] * num, 0)
    ratios = weight_update.double()[strong] / db[strong, None]
    norms = ratios.norm(dim=1).clamp(min=1e-30)
    if one_step:
        distance = torch.cdist(ratios, ratios) / torch.maximum(norms[:, None], norms[None, :])
    else:
        unit = ratios / norms[:, None]
        distance, tolerances = 1 - unit @ unit.t(), (0.005,)
    order = torch.argsort(db[strong].abs(), descending=True).tolist()
    chosen: list[torch.Tensor] = []
    taken = torch.zeros(strong.numel(), dtype=torch.bool, device=db.device)
    for tolerance in tolerances:  # keep what a tighter tolerance found; fill only the missing inputs
        near_found = (distance[:, torch.cat(chosen)] <= tolerance).any(1) if chosen else torch.zeros_like(taken)
        free = [i for i in order if not (taken[i] or near_found[i])]
        for members in _clusters(distance, free, tolerance, db[strong], num - len(chosen), ratios if one_step else None):
            chosen.append(members)
            taken[members] = True
        if len(chosen) >= num:
            break
    if not chosen:
        chosen = [torch.tensor(order[:1], device=db.device)]
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


def _clusters(distance: torch.Tensor, order: list[int], tolerance: float, signal: torch.Tensor, num: int,
              ratios: torch.Tensor | None) -> list:
    """Greedy clusters among the rows ``order`` lists (strongest first), each within ``tolerance`` of its seed;
    the ``num`` largest with at least two rows."""
    unassigned = torch.zeros(distance.shape[0], dtype=torch.bool, device=distance.device)
    unassigned[order] = True
    clusters: list[torch.Tensor] = []
    for seed in order:
        if not unassigned[seed]:
            continue
        members = torch.nonzero(unassigned & (distance[seed] <= tolerance)).flatten()
        unassigned[members] = False
        clusters.append(members)
    clusters = [c for c in clusters if c.numel() >= 2]
    if ratios is not None:
        clusters = _minimal_supports(clusters, ratios)
    clusters.sort(key=lambda m: (-m.numel(), -float(signal[m].abs().sum())))
    return clusters[:max(num, 0)]


def _minimal_supports(clusters: list[torch.Tensor], ratios: torch.Tensor) -> list[torch.Tensor]:
    """Drop clusters whose non-zero coordinates strictly contain another cluster's.

    When the loss gradient at the layer's output factorises per sample (a two-class head
    after a ReLU: ``delta_nj = s_n w_j [unit j active for n]``), every row with the same set
    of active samples has the *same* ratio, ``sum s_n x_n / sum s_n`` over that set, so
    mixtures form tight clusters too. Inputs after a ReLU have exact zeros, and a mixture is
    non-zero wherever any member is: the pure inputs are the clusters with minimal supports.
    """
    if len(clusters) < 2:
        return clusters
    means = torch.stack([ratios[c].mean(0) for c in clusters])
    support = means.abs() > 1e-6 * means.abs().amax(1, keepdim=True).clamp(min=1e-30)
    counts = support.sum(1)
    contains = (support[:, None, :] | ~support[None, :, :]).all(-1)  # contains[a, b]: support a ⊇ support b
    strict = contains & (counts[:, None] > counts[None, :])
    return [c for c, mixed in zip(clusters, strict.any(1).tolist()) if not mixed]
