"""Inverting Gradients (Geiping et al. 2020, https://arxiv.org/abs/2003.14053).

Cosine update matching plus total variation, Adam on signed gradients with step decay and
box projection, several restarts keeping the best loss. Updates of several local steps (the
FedAvg case, section 5 of the paper) are matched by simulating the client's local SGD on
the candidates with a differentiable functional SGD.
"""

from __future__ import annotations

import torch

from attacks.inversion.base import INVERSION_METHODS, InversionAttack, Observation, Reconstruction
from attacks.inversion.labels import recover_labels
from attacks.inversion.matching import cosine_distance, signed_adam
from attacks.inversion.priors import Candidate, feature_prior_loss, total_variation
from attacks.inversion.simulate import simulate_update


@INVERSION_METHODS.register("inverting-gradients")
class InvertingGradients(InversionAttack):
    name = "inverting-gradients"
    targets = ("full-model",)
    default_iterations = 200
    paper = "Geiping et al. 2020, Inverting Gradients"
    restarts = 2
    lr = 0.1

    def reconstruct(self, observation: Observation) -> Reconstruction:
        generator = torch.Generator().manual_seed(self.seed)
        labels = recover_labels(observation)
        names = list(observation.update)
        model, prior = observation.model, observation.prior

        def loss_fn(images: torch.Tensor) -> torch.Tensor:
            update = simulate_update(model, images, labels, observation.step, names)
            loss = cosine_distance(update, observation.update) + prior.tv_weight * total_variation(images)
            if prior.feature_mean is not None:
                loss = loss + feature_prior_loss(model.shared_input(images), prior)
            return loss

        best, best_loss = None, float("inf")
        per_restart = max(self.iterations // self.restarts, 1) if self.iterations else 0
        for _ in range(self.restarts):
            candidate = Candidate(observation.num_images, observation.image_size, prior, generator, observation.device)
            loss = signed_adam(candidate, loss_fn, per_restart, lr=self.lr)
            if best is None or loss < best_loss:
                best, best_loss = candidate().detach(), loss
        return Reconstruction(best.clamp(0, 1), labels, per_restart * self.restarts, stats={"loss": best_loss})
