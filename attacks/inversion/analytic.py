"""Layer-wise analytic recovery against full-model updates: the strongest full-model attack.

The first linear layer ``fc`` sees the flattened conv features; its weight and bias update
give them analytically (:mod:`attacks.inversion.linear`; for ``simple`` at 224x224 that is
16928 values per image, exactly, at batch 1, and still exactly after several local steps on
that one image, since lr and step count cancel in the ratio). At batch > 1 the rows of the
update that one sample dominates are clustered and each cluster gives one sample's features
(``clusters_found`` in the stats says how many of the ``num_images`` came back that way;
the rest fall back on the least-squares mixture). Labels: iDLG at batch 1 (exact), else the
sign pattern of ``fc``'s bias update back-propagated from the classifier.

What is left is to invert the conv stack: optimise the image so that ``backbone(x)``
matches the recovered features (:func:`attacks.inversion.feature_inversion.invert_features`:
Adam, cosine decay, half-resolution grid, TV, greyscale, server-mean start). No update is
simulated, so the cost does not grow with the client's local steps or batch.

Measured with bench/inversion.py (real brain MRI, `simple` at its initialisation, batch 1,
one SGD step): see the table in that file's docstring.
References: Phong et al. 2017 (https://eprint.iacr.org/2017/715), Geiping et al. 2020
(https://arxiv.org/abs/2003.14053, prop. 3.1), Mahendran & Vedaldi 2015.
"""

from __future__ import annotations

import torch

from attacks.inversion.base import INVERSION_METHODS, InversionAttack, Observation, Reconstruction
from attacks.inversion.feature_inversion import InversionSetup, invert_features
from attacks.inversion.layerwise import recover_fc
from attacks.inversion.matching import cosine_distance
from attacks.inversion.priors import total_variation
from attacks.inversion.simulate import simulate_update


@INVERSION_METHODS.register("analytic")
class LayerwiseAnalytic(InversionAttack):
    name = "analytic"
    targets = ("full-model",)
    default_iterations = 400
    paper = "Phong et al. 2017; Geiping et al. 2020 (prop. 3.1): analytic linear-layer inputs, then conv inversion"
    priors_used = ("box", "greyscale", "tv", "server-mean-init")
    setup = InversionSetup()

    def reconstruct(self, observation: Observation) -> Reconstruction:
        generator = torch.Generator().manual_seed(self.seed)
        model = observation.model
        features, labels, recovery = recover_fc(observation)

        def features_of(images):
            return torch.flatten(model.backbone(images), 1)

        small = sum(t.numel() for t in observation.update.values()) <= self.refine_max_values
        refine = self.iterations * self.refine_fraction if observation.step.local_steps == 1 and small else 0
        refine = int(refine)
        images, loss, ran = invert_features(observation, features_of, features, self.iterations - refine, generator, self.setup)
        if refine:
            images, loss = self._refine(observation, images, features_of, features, labels, refine)
            ran += refine
        return Reconstruction(images, labels, ran, stats={"loss": loss, "clusters_found": recovery.clusters_found, "layer": "fc"})

    #: share of the budget spent refining with cosine matching of the whole update (FedSGD
    #: updates of small models only): +0.1 dB at 64x64 and +0.5 to +3 dB at 32x32 measured.
    refine_fraction = 0.5
    refine_max_values = 2_000_000

    def _refine(self, observation, images, features_of, features, labels, iterations):
        names = list(observation.update)
        target = observation.update
        norms = features.flatten(1).pow(2).sum(1).clamp(min=1e-12)
        pixels = images[:, :1].clone().requires_grad_(True)
        optimizer = torch.optim.Adam([pixels], lr=self.refine_lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
        for _ in range(iterations):
            optimizer.zero_grad(set_to_none=True)
            x = pixels.expand(-1, 3, -1, -1)
            update = simulate_update(observation.model, x, labels, observation.step, names)
            f = ((features_of(x) - features).flatten(1).pow(2).sum(1) / norms).mean()
            loss = f + cosine_distance(update, target) + self.refine_tv * total_variation(x)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                pixels.clamp_(0, 1)
        return pixels.detach().expand(-1, 3, -1, -1).clone(), float(f.detach())

    refine_lr = 0.05
    refine_tv = 0.01
