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

* ``shared-subspace``: the analytic step, then the backbone's own algebra: ``z = relu(fc(f))``
  with ``fc`` known (knowledge init/full) gives one linear equation on the fc input ``f`` per
  active unit (:func:`fc_input_algebra` reports how many, their rank, and the least-squares
  ``f``); the server's posterior-mean image given ``z``, learned on its own images pushed
  through the same model (:mod:`attacks.inversion.posterior`), is the starting guess, and
  the image is then searched around it, along what that guess leaves open, so that the
  backbone maps it to ``z`` (:mod:`attacks.inversion.subspace`; GIAS, Jeon et al. 2021).
  With fewer than 32 server images, or for an observed round (whose ratio mixes many
  images' features), the plain subspace of the server's images.

The reported ``feature_rel_error`` measures the first step: how much of the private
features leaks, whatever the backbone the attacker has to invert them with.

What the backbone algebra recovers (`simple`, shared width 1024, measured in
bench/inversion.py): at 64x64 the fc input has 800 values and about half of the 1024 units
are active, so ``f`` is pinned to an affine space of dimension ``800 - rank`` (plus the
inactive units' inequalities); at 224x224 ``f`` has 16928 values against at most 1024
equations, so the algebra alone recovers under 6% of it, and the image must come from the
search. Sharing one layer thus gives the server ``z`` exactly; how much image that is worth
is what ``shared-subspace`` measures.
"""

from __future__ import annotations

import torch

from attacks.inversion.base import INVERSION_METHODS, InversionAttack, Observation, Reconstruction
from attacks.inversion.feature_inversion import invert_features
from attacks.inversion.labels import labels_from_bias_pattern
from attacks.inversion.linear import LinearRecovery, recover_linear_inputs
from attacks.inversion.matching import cosine_distance, signed_adam
from attacks.inversion.posterior import POSTERIOR_BLEND, blend_with_guess, search_start
from attacks.inversion.priors import Candidate, feature_prior_loss, total_variation
from attacks.inversion.simulate import simulate_update
from attacks.inversion.subspace import SubspaceSetup, search_subspace

SHARED = ("shared.weight", "shared.bias")


def recover_shared_inputs(observation: Observation) -> tuple[LinearRecovery, torch.Tensor]:
    """Analytic recovery of ``shared``'s inputs and one label per input."""
    model = observation.model
    recovery = recover_linear_inputs(observation.update["shared.weight"], observation.update["shared.bias"], observation.num_images,
                                     one_step=observation.one_gradient_step)
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


def fc_input_algebra(model, shared_inputs: torch.Tensor) -> dict:
    """What ``z = relu(W f + b)`` with known ``W, b`` says about the fc input ``f``, per recovered ``z``.

    Every active unit (``z_i > 0``) gives ``W_i f = z_i - b_i``; returns the equations used,
    the unknowns, the rank of the active rows and the minimum-norm least-squares ``f``
    (exact when the rank equals the unknowns).
    """
    weight, bias = model.fc.weight.detach().double(), model.fc.bias.detach().double()
    solutions, equations, ranks = [], [], []
    for z in shared_inputs.detach().double():
        active = z > 0
        rows = weight[active]
        solution = torch.linalg.lstsq(rows.cpu(), (z[active] - bias[active]).cpu()[:, None], driver="gelsd").solution[:, 0]
        solutions.append(solution.to(weight.device).float())
        equations.append(int(active.sum()))
        ranks.append(int(torch.linalg.matrix_rank(rows.cpu())) if rows.shape[0] else 0)
    return {"fc_inputs": torch.stack(solutions), "equations": equations, "ranks": ranks, "unknowns": int(weight.shape[1])}


@INVERSION_METHODS.register("shared-subspace")
class SharedSubspace(InversionAttack):
    """Shared input exactly, the fc algebra reported, the image searched in the server's image subspace."""

    name = "shared-subspace"
    default_iterations = 150
    in_default = True
    paper = ("Phong et al. 2017 (analytic linear-layer inputs); R-GAP (Zhu & Blaschko 2021) forward constraints; "
             "Jeon et al. 2021 (GIAS); Dosovitskiy & Brox 2016 and Wu et al. 2023 (inversions learned on the attacker's data)")
    priors_used = ("box", "greyscale", "server-subspace", "server-mean-init", "server-posterior")
    setup = SubspaceSetup()
    #: weight of the posterior-mean guess in the returned image (:data:`attacks.inversion.posterior.POSTERIOR_BLEND`)
    posterior_blend = POSTERIOR_BLEND

    def reconstruct(self, observation: Observation) -> Reconstruction:
        model = observation.model
        recovery, labels = recover_shared_inputs(observation)
        features = recovery.inputs.detach()
        algebra = fc_input_algebra(model, features)
        stats = {"clusters_found": recovery.clusters_found, "layer": "shared", "fc_input_equations": algebra["equations"],
                 "fc_input_rank": algebra["ranks"], "fc_input_unknowns": algebra["unknowns"]}
        if observation.prior.subspace is None:
            generator = torch.Generator().manual_seed(self.seed)
            images, loss, ran = invert_features(observation, model.shared_input, features, self.iterations, generator)
            return Reconstruction(images, labels, ran, features=features, stats={**stats, "loss": loss, "search": "pixels"})
        norms = features.pow(2).sum(1).clamp(min=1e-12)

        def loss_fn(images: torch.Tensor) -> torch.Tensor:
            return ((model.shared_input(images) - features).pow(2).sum(1) / norms).mean()

        candidate, posterior = search_start(observation, "shared", model.shared_input, features, self.posterior_blend)
        if posterior is not None:
            stats["posterior"] = posterior
        loss, ran = search_subspace(candidate, loss_fn, self.iterations, self.setup)
        search = "posterior-subspace" if posterior is not None else "subspace"
        blend = posterior["blend"] if posterior is not None else self.posterior_blend
        images = blend_with_guess(candidate().detach(), candidate, blend)
        return Reconstruction(images.clamp(0, 1), labels, ran, features=features,
                              stats={**stats, "loss": loss, "search": search, "fc_inputs": algebra["fc_inputs"]})
