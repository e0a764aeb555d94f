"""Feature-to-image inversion: find images whose features equal the recovered ones.

Once a linear layer's input is recovered analytically (:mod:`attacks.inversion.linear`),
what remains is to invert the network below it: optimise the image so that the attacker's
backbone maps it to the recovered features (Mahendran & Vedaldi 2015,
https://arxiv.org/abs/1412.0035), under total variation and the server's priors.

Setup, tuned on real brain MRI with `simple` (bench/inversion.py; 224x224, batch 1):

* plain Adam (not signed) with cosine learning-rate decay: the feature loss is smooth
  enough for Adam's own step sizes, and the decay settles the last digits of the match;
* the image is optimised on a half-resolution grid upsampled bilinearly
  (:class:`~attacks.inversion.priors.Candidate`, ``resolution=2``): a conv + max-pool stack
  ignores every pixel that is not under a pooled maximum, and at full resolution those
  pixels fill with salt-and-pepper noise that TV alone does not remove (+2.4 dB at 224);
* TV weight 0.1 (against 0.01 for gradient matching, whose loss is of another scale):
  +1.8 dB at 224 over 0.01;
* a greyscale candidate, started from the server's mean image;
* optional restarts, keeping the lowest feature loss; early stop when the loss plateaus.

Matching the conv layers' own updates as well (their gradient for the known upstream
signal) was tried and dropped: from the mean image and even from the true image plus
noise, the gradient term's landscape (max-pool arg-max switches) pulled the image away
(-4 dB at 64x64).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from attacks.inversion.base import Observation
from attacks.inversion.priors import Candidate, total_variation


@dataclass(frozen=True)
class InversionSetup:
    """Optimiser settings of :func:`invert_features` (defaults: the tuned ones, see module doc)."""

    lr: float = 0.02
    tv_weight: float = 0.1
    resolution: int = 2  # optimise an S/2 grid, upsampled bilinearly
    restarts: int = 1
    patience: int = 100  # stop when the loss has not improved by 0.1% for this many iterations
    min_side: int = 16  # below this side the image is optimised at full resolution


def invert_features(
    observation: Observation,
    features_of: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    iterations: int,
    generator: torch.Generator,
    setup: InversionSetup = InversionSetup(),
) -> tuple[torch.Tensor, float, int]:
    """Optimise ``len(targets)`` images so that ``features_of(images) ~= targets``.

    Returns ``(images in [0, 1], final relative feature loss, iterations run)``. The feature
    loss is ``mean_n ||f(x_n) - t_n||^2 / ||t_n||^2``, so 1e-3 means a 3% error.
    """
    prior = observation.prior
    targets = targets.detach().to(observation.device)
    norms = targets.flatten(1).pow(2).sum(1).clamp(min=1e-12)
    resolution = setup.resolution if observation.image_size // max(setup.resolution, 1) >= setup.min_side else 1

    def feature_loss(images: torch.Tensor) -> torch.Tensor:
        return ((features_of(images) - targets).flatten(1).pow(2).sum(1) / norms).mean()

    best, best_loss, ran = None, float("inf"), 0
    for _ in range(max(setup.restarts, 1)):
        candidate = Candidate(targets.shape[0], observation.image_size, prior, generator, observation.device,
                              resolution=resolution)
        optimizer = torch.optim.Adam([candidate.pixels], lr=setup.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(iterations, 1))
        plateau_best, since = float("inf"), 0
        for _ in range(iterations):
            optimizer.zero_grad(set_to_none=True)
            images = candidate()
            loss = feature_loss(images) + setup.tv_weight * total_variation(images)
            loss.backward()
            optimizer.step()
            scheduler.step()
            candidate.project()
            ran += 1
            value = float(loss.detach())
            if value < plateau_best * (1 - 1e-3):
                plateau_best, since = value, 0
            else:
                since += 1
                if since >= setup.patience:
                    break
        with torch.no_grad():
            images = candidate().detach().clamp(0, 1)
            final = float(feature_loss(images))
        if final < best_loss:
            best, best_loss = images, final
    return best, best_loss, ran


def relative_feature_error(recovered: torch.Tensor, truth: torch.Tensor) -> float:
    """||recovered - truth|| / ||truth|| over the whole batch (rows already matched)."""
    return float((recovered - truth).norm() / truth.norm().clamp(min=1e-12))
