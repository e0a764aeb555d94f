"""Reference models and their signals: the attacker's picture of "trained with x" vs "without x".

Two sets, as in LiRA (Carlini et al. 2022, Sec. IV-C/D):

* **offline** models are trained on random halves of data the attacker really holds (the
  server's own split). No candidate is ever in them, so they give only the "OUT"
  distribution of each candidate's signal. This is what an honest-but-curious FL server
  can do without anything beyond its own data.
* **online** models are trained on random halves of (server data U candidate pool), with
  every sample IN exactly half of the models (the standard LiRA protocol), so each
  candidate gets both an IN and an OUT distribution. The server can do this only if it
  already holds the candidate records it wants to test, e.g. a hospital's patient scans
  that it suspects a client trained on; that is the setting of a membership *query*, so it
  is the stronger, less realistic attacker.

Signals are computed once for the whole pool (candidates of every attacked model plus the
population) and sliced per attack, so one set of reference models serves all clients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from attacks.membership.shadow import ShadowConfig, train_shadow_model
from attacks.membership.signals import model_logits, true_class_phi, true_class_prob


@dataclass
class ReferenceSignals:
    """Signals of M reference models on P pool samples.

    ``phi``/``prob``: (M, P) logit-scaled and plain true-class confidence;
    ``in_mask``: (M, P) True where the sample was in model m's training set;
    ``logits``: (M, P, classes), for signals at another softmax temperature (RMIA).
    """

    phi: np.ndarray
    prob: np.ndarray
    in_mask: np.ndarray
    seconds: float = 0.0
    logits: np.ndarray | None = None

    @property
    def n_models(self) -> int:
        return int(self.phi.shape[0])

    def take(self, index: np.ndarray) -> ReferenceSignals:
        logits = self.logits[:, index] if self.logits is not None else None
        return ReferenceSignals(self.phi[:, index], self.prob[:, index], self.in_mask[:, index], self.seconds, logits)


def balanced_halves(n_samples: int, n_models: int, rng: np.random.Generator) -> np.ndarray:
    """(M, n) mask with every sample IN exactly floor(M/2) (or, for odd M, ceil) models.

    Each model then sees about half of the pool, and every sample has both IN and OUT
    models as soon as M >= 2.
    """
    ranks = rng.random((n_models, n_samples)).argsort(axis=0).argsort(axis=0)
    cut = np.where(rng.random(n_samples) < 0.5, n_models // 2, (n_models + 1) // 2)
    return ranks < cut[None, :]


def train_reference_signals(
    pool_images: torch.Tensor,
    pool_labels: torch.Tensor,
    in_mask: np.ndarray,
    *,
    arch: str,
    image_size: int,
    shared_width: int,
    num_classes: int = 2,
    dp: bool = False,
    config: ShadowConfig = ShadowConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_model_done=None,
) -> ReferenceSignals:
    """Train one model per row of ``in_mask`` and read its signals on the whole pool."""
    start = time.perf_counter()
    phis, probs, all_logits = [], [], []
    for m, row in enumerate(in_mask):
        index = torch.as_tensor(np.flatnonzero(row))
        model = train_shadow_model(
            pool_images[index],
            pool_labels[index],
            arch=arch,
            image_size=image_size,
            shared_width=shared_width,
            num_classes=num_classes,
            dp=dp,
            config=config,
            seed=seed * 1009 + m,
            device=device,
        )
        logits = model_logits(model, pool_images, device=device)
        phis.append(true_class_phi(logits, pool_labels))
        probs.append(true_class_prob(logits, pool_labels))
        all_logits.append(logits.numpy())
        if on_model_done is not None:
            on_model_done()
    return ReferenceSignals(np.stack(phis), np.stack(probs), np.asarray(in_mask, bool), time.perf_counter() - start,
                            np.stack(all_logits))
