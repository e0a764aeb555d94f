"""Every layer's gradient, with the fc input as the anchor: the strongest full-model attack here.

R-GAP (Zhu & Blaschko, ICLR 2021, https://arxiv.org/abs/2010.07733) inverts a network layer
by layer: a layer's weight gradient and its *output* gradient give its input; R-CONV (2024)
does it for convolutions. Here:

1. the fc input ``h`` comes back analytically from fc's weight and bias update (exact at
   batch 1; rows one sample owns are clustered at larger batches, ``clusters_found``),
   :mod:`attacks.inversion.linear`;
2. with the weights known (knowledge init/full) the head above fc is a known function, so
   the loss gradient with respect to ``h`` is computed exactly from ``h`` and the labels
   (:func:`output_gradients`); at batch 1 it equals ``fc.weight^T`` times fc's bias gradient;
3. the server's best guess of the image given ``h``: the posterior mean learned on its own
   images pushed through the same model (:mod:`attacks.inversion.posterior`); every search
   below starts there and moves along what that guess leaves open (the principal
   components of its out-of-fold residuals) instead of along the server images' own
   components, and the returned image averages the search's result with the guess
   (:data:`attacks.inversion.posterior.POSTERIOR_BLEND`). Measured at 64x64 (bench/inversion.py, real slices): +3.7 dB
   over the null before; +5.3 dB with the search alone (20 slices, 256 server images);
   +6.0 dB, every slice identified, with the average and 1,176 server images (24 slices).
   At 224x224 fc's input is a 23 x 23 map, and the guess also averages in a local decoder
   of it (:mod:`attacks.inversion.local_decoder`): +4.9 -> +6.3 dB on 4 slices; +7.4 dB on 8;
   +9.8 dB with the convolutional decoder of :mod:`attacks.inversion.conv_decoder`, whose
   guess the search's result no longer beats (it gets weight
   :data:`attacks.inversion.posterior.CONV_POSTERIOR_BLEND` in the returned image).
   Only for one gradient step: the posterior is learned for one image's features, and an
   observed round's fc ratio mixes hundreds of images over many Adam steps (there, with the
   one-step clustering too, it measured worse than the plain subspace: quick study, FedAvg's
   observed round, 13.5 -> 11.3 dB PSNR against a null of 21.2);
4. the conv layers' weight gradients are then a known function of the image: backpropagate
   that fixed output gradient through the backbone. Max-pool is handled explicitly by the
   backbone itself: its arg-max switches route the output gradient to exactly the pixels a
   candidate image selects, so a candidate with the wrong switches gets the wrong conv
   gradients. Those switches flip within ~1% of a pixel of the truth (measured), so these
   terms are far too rugged for descent in pixel space: we search the server's image
   subspace instead (:mod:`attacks.inversion.subspace`), first on ``h`` alone, then on ``h``
   and every conv weight gradient, weighted per layer (the last conv layer 1, each layer below
   it ``layer_decay`` times less: the lower layers' switches are the most fragile);
5. the subspace holds no texture the server's images lack, yet ``h`` (after two max-pools)
   mostly encodes fine texture: a last pixel-space pass starts from the subspace solution
   (``refine_share`` of the budget). For an observed round it matches ``h``, anchored to
   the subspace solution (measured on 10 real slices at 64x64: -0.4 dB PSNR,
   identification top-1 0.7 -> 0.9). For one gradient step it matches ``h`` and every conv
   weight gradient with a total-variation prior instead of the anchor (Rudin, Osher &
   Fatemi 1992; Geiping et al. 2020 use it for the same reason): pixel space has directions
   the gradients barely see, and TV keeps them from filling with noise. Kept only if it
   lowers the gradient mismatch. Measured at 64x64 (bench/inversion.py, 20 real slices):
   +3.0 -> +3.7 dB over the null, identification 0.95 -> 1.0; on 10 slices the gradient
   terms without TV lost 2 dB, TV alone (no gradients) gained 0.5 dB.

Why not R-GAP's next analytic step (conv3's input from its weight gradient with the last
max-pool's switches frozen): bench/conv3_switches.py measures it at 64x64. With the true
switches it would cut the error of conv3's input from 0.19 to 0.04; with the switches of
the reconstruction (47% right) the solve is 3.4x worse than the reconstruction, so it is
not used.

The gradient terms are only used where the update *is* a gradient (one plain SGD step: the
worst-case replay); an observed round of several Adam steps is matched on ``h`` alone (the
fc ratio is then a weighted mix of the features seen during the round).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks.inversion.base import INVERSION_METHODS, InversionAttack, Observation, Reconstruction
from attacks.inversion.feature_inversion import invert_features
from attacks.inversion.labels import batch_label_counts, labels_from_bias_pattern, recover_labels
from attacks.inversion.linear import recover_linear_inputs
from attacks.inversion.local_decoder import MapGeometry
from attacks.inversion.posterior import POSTERIOR_BLEND, blend_with_guess, search_start
from attacks.inversion.subspace import SubspaceSetup, search_subspace


def output_gradients(model, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """dL/dh for each fc input ``h`` (rows of ``features``), L = the batch's mean cross-entropy."""
    with torch.enable_grad():
        h = features.detach().clone().requires_grad_(True)
        logits = model.forward_from_shared_input(model.act(model.fc(h)))
        (gradient,) = torch.autograd.grad(F.cross_entropy(logits, labels), [h])
    return gradient.detach()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (anisotropic TV)."""
    return ((images[..., 1:, :] - images[..., :-1, :]).abs().mean()
            + (images[..., :, 1:] - images[..., :, :-1]).abs().mean())


def conv_weight_names(observation: Observation) -> list[str]:
    """Backbone weight tensors (conv/linear kernels, not norms) the update carries, top layer first."""
    names = [n for n, p in observation.model.named_parameters()
             if n.startswith("backbone.") and p.dim() >= 2 and n in observation.update]
    return names[::-1]


def recover_fc(observation: Observation):
    """(features, labels, LinearRecovery) of fc's input, as the layer-wise attacks start."""
    model = observation.model
    recovery = recover_linear_inputs(observation.update["fc.weight"], observation.update["fc.bias"], observation.num_images,
                                     one_step=observation.one_gradient_step)
    features = recovery.inputs.detach()
    if observation.labels is not None or observation.num_images == 1:
        labels = recover_labels(observation)
    else:

        def head(x):
            return model.forward_from_shared_input(model.act(model.fc(x)))

        labels = labels_from_bias_pattern(head, model.fc.bias, features, observation.gradient_estimate("fc.bias"),
                                          observation.num_classes, recovery.rows,
                                          counts=batch_label_counts(observation))
    return features, labels, recovery


@INVERSION_METHODS.register("layerwise")
class Layerwise(InversionAttack):
    """fc input exactly, then every conv layer's weight gradient, searched in the server's image subspace."""

    name = "layerwise"
    targets = ("full-model",)
    default_iterations = 300
    in_default = True
    paper = ("Zhu & Blaschko 2021 (R-GAP) and R-CONV 2024: layer-wise inversion from weight and output gradients; "
             "Dosovitskiy & Brox 2016 and Wu et al. 2023: the posterior mean image learned on the attacker's own data; "
             "Jeon et al. 2021 (GIAS): search a prior fitted on the server's data")
    priors_used = ("box", "greyscale", "server-subspace", "server-mean-init", "server-posterior")
    setup = SubspaceSetup()
    #: weight of each conv layer's gradient term relative to the one above it
    layer_decay = 0.1
    #: share of the budget spent on the fc input alone before the gradient terms join
    feature_share = 0.33
    #: share of the budget spent on the last pixel-space pass (Adam steps), and its settings
    refine_share = 0.33
    refine_lr = 0.01
    refine_anchor = 0.1
    #: the one-step pixel pass: Adam step size and total-variation weight (bench/inversion.py, 64x64)
    gradient_refine_lr = 0.002
    refine_tv = 0.5
    #: weight of the posterior-mean guess in the returned image (the rest: the search's result)
    posterior_blend = POSTERIOR_BLEND

    def reconstruct(self, observation: Observation) -> Reconstruction:
        model = observation.model
        features, labels, recovery = recover_fc(observation)
        norms = features.flatten(1).pow(2).sum(1).clamp(min=1e-12)

        def feature_loss(images: torch.Tensor) -> torch.Tensor:
            return ((torch.flatten(model.backbone(images), 1) - features).pow(2).sum(1) / norms).mean()

        stats = {"clusters_found": recovery.clusters_found, "layer": "fc"}
        if observation.prior.subspace is None:  # too few server images for a subspace: pixel-space feature inversion
            generator = torch.Generator().manual_seed(self.seed)
            images, loss, ran = invert_features(observation, lambda x: torch.flatten(model.backbone(x), 1), features,
                                                self.iterations, generator)
            return Reconstruction(images, labels, ran, stats={**stats, "loss": loss, "search": "pixels"})

        candidate, posterior = search_start(observation, "fc", lambda x: torch.flatten(model.backbone(x), 1), features,
                                            self.posterior_blend, geometry=MapGeometry.of(model, observation.image_size))
        if posterior is not None:
            stats["posterior"] = posterior
        refine = int(self.iterations * self.refine_share)
        searched = self.iterations - refine
        first = int(self.iterations * self.feature_share) if observation.one_gradient_step else searched
        loss, ran = search_subspace(candidate, feature_loss, first, self.setup)
        stats.update(search="posterior-subspace" if posterior is not None else "subspace",
                     subspace_rank=candidate.subspace.rank)
        if first < searched:
            gradient_loss = self._gradient_objective(observation, features, labels)
            loss, more = search_subspace(candidate, gradient_loss, searched - first, self.setup)
            ran += more
            stats["gradient_layers"] = conv_weight_names(observation)
        images = candidate().detach()
        if refine and first < searched:
            images = self._refine_gradients(images, gradient_loss, refine, observation.prior.greyscale)
            ran += refine
            stats["refine"] = "gradients+tv"
        elif refine:
            images = self._refine(images, feature_loss, refine, observation.prior.greyscale)
            ran += refine
        images = blend_with_guess(images, candidate, posterior["blend"] if posterior is not None else self.posterior_blend)
        with torch.no_grad():
            stats["feature_loss"] = float(feature_loss(images))
        return Reconstruction(images.clamp(0, 1), labels, ran, stats={**stats, "loss": loss})

    def _refine(self, start: torch.Tensor, feature_loss, iterations: int, grey: bool) -> torch.Tensor:
        """Pixel-space Adam on the fc-input match, anchored to the subspace solution."""
        anchor = start[:, :1] if grey else start
        pixels = anchor.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([pixels], lr=self.refine_lr)
        for _ in range(iterations):
            optimizer.zero_grad(set_to_none=True)
            images = pixels.clamp(0, 1)
            images = images.expand(-1, 3, -1, -1) if grey else images
            loss = feature_loss(images) + self.refine_anchor * (pixels - anchor).pow(2).mean()
            loss.backward()
            optimizer.step()
        images = pixels.detach().clamp(0, 1)
        return images.expand(-1, 3, -1, -1).clone() if grey else images

    def _refine_gradients(self, start: torch.Tensor, gradient_loss, iterations: int, grey: bool) -> torch.Tensor:
        """Pixel-space Adam on every layer's gradient match plus total variation; kept if the match improves."""
        pixels = (start[:, :1] if grey else start).clone().requires_grad_(True)

        def images_of(p: torch.Tensor) -> torch.Tensor:
            images = p.clamp(0, 1)
            return images.expand(-1, 3, -1, -1) if grey else images

        with torch.enable_grad():
            before = float(gradient_loss(images_of(pixels)).detach())
            optimizer = torch.optim.Adam([pixels], lr=self.gradient_refine_lr)
            for _ in range(iterations):
                optimizer.zero_grad(set_to_none=True)
                loss = gradient_loss(images_of(pixels)) + self.refine_tv * total_variation(pixels)
                loss.backward()
                optimizer.step()
            after = float(gradient_loss(images_of(pixels)).detach())
        return images_of(pixels.detach()).clone() if after < before else start

    def _gradient_objective(self, observation: Observation, features, labels):
        """h matched, plus each conv weight gradient (relative squared error, per-layer weights)."""
        model = observation.model
        upstream = output_gradients(model, features, labels)
        names = conv_weight_names(observation)
        params = dict(model.named_parameters())
        targets = [observation.gradient_estimate(n) for n in names]
        target_norms = [t.pow(2).sum().clamp(min=1e-20) for t in targets]
        weights = [self.layer_decay**i for i in range(len(names))]

        def loss(images: torch.Tensor) -> torch.Tensor:
            out = torch.flatten(model.backbone(images), 1)
            value = ((out - features).pow(2).sum(1) / features.pow(2).sum(1).clamp(min=1e-12)).mean()
            grads = torch.autograd.grad((out * upstream).sum(), [params[n] for n in names], create_graph=True)
            for g, t, norm, w in zip(grads, targets, target_norms, weights):
                value = value + w * (g - t).pow(2).sum() / norm
            return value

        return loss
