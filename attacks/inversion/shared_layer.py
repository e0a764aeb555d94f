"""Attacks that see only the ``shared`` layer's update (partial aggregation, or a full-model
update restricted to ``shared``).

* ``shared-analytic``: the input of ``shared`` (the client's private features
  ``relu(fc(backbone(x)))``) is read off the update analytically, exactly for one sample and
  one step, disaggregated by clustering rows otherwise (:mod:`attacks.inversion.linear`);
  labels come from the bias update's sign pattern; then an image is optimised so that the
  attacker's backbone (per knowledge) maps it to those features, with TV.
* ``shared-gradient-matching``: cosine matching of the shared layer's update, simulated
  through the attacker's backbone (Inverting Gradients restricted to one layer), starting
  from the labels the analytic step gives.

The reported ``feature_rel_error`` measures the first step: how much of the private
features leaks, whatever the backbone the attacker has to invert them with.
"""

from __future__ import annotations

import torch

from attacks.inversion.base import INVERSION_METHODS, InversionAttack, Observation, Reconstruction
from attacks.inversion.feature_inversion import invert_features
from attacks.inversion.labels import labels_from_bias_pattern
from attacks.inversion.linear import LinearRecovery, recover_linear_inputs
from attacks.inversion.matching import cosine_distance, signed_adam
from attacks.inversion.priors import Candidate, feature_prior_loss, total_variation
from attacks.inversion.simulate import simulate_update

SHARED = ("shared.weight", "shared.bias")


def recover_shared_inputs(observation: Observation) -> tuple[LinearRecovery, torch.Tensor]:
    """Analytic recovery of ``shared``'s inputs and one label per input."""
    model = observation.model
    recovery = recover_linear_inputs(observation.update["shared.weight"], observation.update["shared.bias"], observation.num_images)
    if observation.labels is not None:
        return recovery, observation.labels.to(observation.device)
    labels = labels_from_bias_pattern(model.forward_from_shared_input, model.shared.bias, recovery.inputs,
                                      observation.gradient_estimate("shared.bias"), observation.num_classes, recovery.rows)
    return recovery, labels


@INVERSION_METHODS.register("shared-analytic")
class SharedAnalytic(InversionAttack):
    name = "shared-analytic"
    default_iterations = 300
    paper = "Phong et al. 2017 (analytic linear-layer inputs); Mahendran & Vedaldi 2015 (feature inversion)"
    priors_used = ("box", "greyscale", "tv", "server-mean-init")

    def reconstruct(self, observation: Observation) -> Reconstruction:
        generator = torch.Generator().manual_seed(self.seed)
        recovery, labels = recover_shared_inputs(observation)
        features = recovery.inputs.detach()
        images, loss, ran = invert_features(observation, observation.model.shared_input, features, self.iterations, generator)
        return Reconstruction(images, labels, ran, features=features,
                              stats={"loss": loss, "clusters_found": recovery.clusters_found, "layer": "shared"})


@INVERSION_METHODS.register("shared-gradient-matching")
class SharedGradientMatching(InversionAttack):
    name = "shared-gradient-matching"
    default_iterations = 300
    paper = "Geiping et al. 2020 (Inverting Gradients) restricted to the shared layer"

    def reconstruct(self, observation: Observation) -> Reconstruction:
        generator = torch.Generator().manual_seed(self.seed)
        recovery, labels = recover_shared_inputs(observation)
        target = {k: observation.update[k] for k in SHARED}
        model, prior = observation.model, observation.prior

        def loss_fn(images):
            update = simulate_update(model, images, labels, observation.step, SHARED)
            loss = cosine_distance(update, target) + prior.tv_weight * total_variation(images)
            if prior.feature_mean is not None:
                loss = loss + feature_prior_loss(model.shared_input(images), prior)
            return loss

        candidate = Candidate(observation.num_images, observation.image_size, prior, generator, observation.device)
        loss = signed_adam(candidate, loss_fn, self.iterations, lr=0.05)
        return Reconstruction(candidate().detach().clamp(0, 1), labels, self.iterations,
                              features=recovery.inputs.detach(), stats={"loss": loss})
