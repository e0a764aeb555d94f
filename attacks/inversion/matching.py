"""Gradient-matching losses and the Adam-with-signed-gradients loop of Inverting Gradients.

DLG (Zhu et al. 2019, https://arxiv.org/abs/1906.08935) matches updates in squared L2;
Inverting Gradients (Geiping et al. 2020, https://arxiv.org/abs/2003.14053) uses one minus
the cosine similarity over all tensors, which ignores the unknown scale (learning rate,
number of steps, DP clipping) and weights layers fairly, and optimises with Adam on the
sign of the gradient, projecting onto the box and restarting from several initialisations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from attacks.inversion.priors import Candidate


def l2_distance(candidate: dict[str, torch.Tensor], target: dict[str, torch.Tensor], scale: float = 1.0) -> torch.Tensor:
    return sum(((candidate[k] - target[k]) * scale).pow(2).sum() for k in target)


def cosine_distance(candidate: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    dot = sum((candidate[k] * target[k]).sum() for k in target)
    norm_c = sum(candidate[k].pow(2).sum() for k in target).sqrt()
    norm_t = sum(target[k].pow(2).sum() for k in target).sqrt()
    return 1 - dot / (norm_c * norm_t + 1e-12)


def signed_adam(
    candidate: Candidate,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    iterations: int,
    lr: float = 0.1,
    extra_params: list[torch.Tensor] | None = None,
) -> float:
    """Minimise ``loss_fn(images)`` with Adam on signed gradients, step decay and box projection.

    Returns the final loss. The learning rate drops by 10x at 3/8, 5/8 and 7/8 of the budget,
    as in Inverting Gradients.
    """
    params = [candidate.pixels] + list(extra_params or [])
    optimizer = torch.optim.Adam(params, lr=lr)
    milestones = [int(iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    loss = torch.tensor(float("inf"))
    for _ in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(candidate())
        loss.backward()
        for p in params:
            if p.grad is not None:
                p.grad.sign_()
        optimizer.step()
        scheduler.step()
        candidate.project()
    return float(loss_fn(candidate()).detach())
