"""Feature-to-image inversion: find images whose features equal the recovered ones.

Once a linear layer's input is recovered analytically (:mod:`attacks.inversion.linear`),
what remains is to invert the network below it: optimise the image so that the attacker's
backbone maps it to the recovered features (Mahendran & Vedaldi 2015,
https://arxiv.org/abs/1412.0035), under total variation and the server's priors. Optionally
the gradient of the layers below is matched too (cosine, as in Inverting Gradients), which
pins down what pooling discards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from attacks.inversion.base import Observation
from attacks.inversion.matching import cosine_distance, signed_adam
from attacks.inversion.priors import Candidate, total_variation
from attacks.inversion.simulate import simulate_update


def invert_features(
    observation: Observation,
    features_of: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    labels: torch.Tensor,
    iterations: int,
    generator: torch.Generator,
    gradient_names: list[str] | None = None,
    gradient_weight: float = 1.0,
    lr: float = 0.05,
) -> tuple[torch.Tensor, float]:
    """Optimise ``observation.num_images`` images so that ``features_of(images) ~= targets``."""
    prior = observation.prior
    candidate = Candidate(targets.shape[0], observation.image_size, prior, generator, observation.device)
    norms = targets.flatten(1).pow(2).sum(1).clamp(min=1e-12)
    target_update = {k: observation.update[k] for k in gradient_names or []}

    def loss_fn(images: torch.Tensor) -> torch.Tensor:
        features = features_of(images)
        loss = ((features - targets).flatten(1).pow(2).sum(1) / norms).sum()
        loss = loss + prior.tv_weight * total_variation(images)
        if target_update and gradient_weight > 0:
            update = simulate_update(observation.model, images, labels, observation.step, list(target_update))
            loss = loss + gradient_weight * cosine_distance(update, target_update)
        return loss

    loss = signed_adam(candidate, loss_fn, iterations, lr=lr)
    return candidate().detach().clamp(0, 1), loss


def relative_feature_error(recovered: torch.Tensor, truth: torch.Tensor) -> float:
    """||recovered - truth|| / ||truth|| over the whole batch (rows already matched)."""
    return float((recovered - truth).norm() / truth.norm().clamp(min=1e-12))
