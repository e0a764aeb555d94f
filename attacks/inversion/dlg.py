"""Deep Leakage from Gradients (Zhu et al. 2019, https://arxiv.org/abs/1906.08935) and iDLG.

DLG optimises dummy images *and* dummy (soft) labels with L-BFGS so that their update
matches the observed one in squared L2. iDLG (Zhao et al. 2020,
https://arxiv.org/abs/2001.02610) first reads the labels off the classifier's update
(:mod:`attacks.inversion.labels`) and optimises only the images, which is better posed.
Updates of several local steps are simulated (:func:`attacks.inversion.simulate.simulate_update`).
"""

from __future__ import annotations

import torch

from attacks.inversion.base import INVERSION_METHODS, InversionAttack, Observation, Reconstruction
from attacks.inversion.labels import recover_labels
from attacks.inversion.matching import l2_distance
from attacks.inversion.priors import Candidate
from attacks.inversion.simulate import simulate_update


@INVERSION_METHODS.register("dlg")
class DLG(InversionAttack):
    """L2 update matching with L-BFGS; labels are optimised as soft dummy labels."""

    name = "dlg"
    targets = ("full-model",)
    default_iterations = 100
    paper = "Zhu et al. 2019, Deep Leakage from Gradients"
    learn_labels = True
    priors_used = ("box", "greyscale", "server-mean-init")

    def _labels(self, observation: Observation, generator: torch.Generator):
        if not self.learn_labels:
            return recover_labels(observation), None
        logits = torch.randn((observation.num_images, observation.num_classes), generator=generator)
        return None, logits.to(observation.device).requires_grad_(True)

    def reconstruct(self, observation: Observation) -> Reconstruction:
        generator = torch.Generator().manual_seed(self.seed)
        candidate = Candidate(observation.num_images, observation.image_size, observation.prior, generator, observation.device)
        hard_labels, logits = self._labels(observation, generator)
        # Match in gradient units (update / lr) so the loss scale does not depend on lr.
        scale = 1.0 / observation.step.lr
        names = list(observation.update)
        params = [candidate.pixels] + ([logits] if logits is not None else [])
        optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=max(self.iterations, 1), history_size=100,
                                      line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure():
            optimizer.zero_grad(set_to_none=True)
            labels = torch.softmax(logits, 1) if logits is not None else hard_labels
            update = simulate_update(observation.model, candidate(), labels, observation.step, names)
            loss = l2_distance(update, observation.update, scale)
            loss.backward()
            return loss

        if self.iterations > 0:
            optimizer.step(closure)
        candidate.project()
        evaluations = int(optimizer.state[optimizer._params[0]].get("func_evals", 0)) if self.iterations else 0
        labels = logits.argmax(1).detach() if logits is not None else hard_labels
        return Reconstruction(candidate().detach().clamp(0, 1), labels, evaluations, stats={"loss": float(closure().detach())})


@INVERSION_METHODS.register("idlg")
class IDLG(DLG):
    """DLG with the labels read analytically from the classifier update (iDLG / counting)."""

    name = "idlg"
    paper = "Zhao et al. 2020, iDLG: Improved Deep Leakage from Gradients"
    learn_labels = False
