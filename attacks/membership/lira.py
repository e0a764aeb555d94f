"""Likelihood Ratio Attack (LiRA), online and offline.

Carlini et al., "Membership Inference Attacks From First Principles" (S&P 2022,
https://arxiv.org/abs/2112.03570). For each candidate, reference models give the
distribution of its logit-scaled confidence ``phi`` when it was OUT of training (and, online,
when it was IN); each is fit by a Gaussian and the target model's ``phi`` is scored:

* online: ``log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)`` (the likelihood ratio);
* offline: ``-log P[Z > phi]``, Z ~ N(mu_out, s_out) (one-sided: members sit above OUT).

``fixed_variance`` uses one variance for all candidates (pooled over candidates of the
per-candidate spread, and online over IN and OUT together), which the paper recommends
with few reference models: with the default 4 models a per-candidate variance rests on 2
samples.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from attacks.membership.base import MembershipAttack, MembershipQuery, register_attack, require_reference
from attacks.membership.reference import ReferenceSignals
from privfed.errors import PrivfedError

_MIN_STD = 1e-3


def _gaussian(phi: np.ndarray, mask: np.ndarray, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-candidate mean and std of ``phi`` over the models where ``mask`` is True."""
    counts = mask.sum(axis=0)
    if np.any(counts == 0):
        raise PrivfedError("--reference-models: some candidates have no reference model on one side; use 2 or more reference models")
    mean = np.where(mask, phi, 0.0).sum(axis=0) / counts
    sq = np.where(mask, (phi - mean[None, :]) ** 2, 0.0).sum(axis=0)
    if fixed_variance or np.any(counts < 2):
        dof = max(int((counts - 1).sum()), 1)
        std = np.full(mean.shape, np.sqrt(sq.sum() / dof))
    else:
        std = np.sqrt(sq / (counts - 1))
    return mean, np.maximum(std, _MIN_STD)


class _LiRA(MembershipAttack):
    paper = "Carlini et al. 2022, https://arxiv.org/abs/2112.03570"

    def __init__(self, fixed_variance: bool = True) -> None:
        self.fixed_variance = fixed_variance

    def params(self) -> dict:
        return {"fixed_variance": self.fixed_variance}


@register_attack
class LiRAOnline(_LiRA):
    name = "lira-online"
    requires = frozenset({"target", "online_reference"})
    #: its IN/OUT Gaussians need many references each (the paper uses 64+); at the default 4 it
    #: doubles reference training for a fit weaker than offline LiRA's and RMIA's
    in_default = False
    threat_model = (
        "The attacker holds the candidate records, trains reference models on random halves of "
        "(its own data + candidates) and compares the target's confidence with the IN and OUT fits."
    )

    def score(self, query: MembershipQuery) -> np.ndarray:
        ref: ReferenceSignals = require_reference(query.online, "lira-online")
        if ref.n_models < 2:
            raise PrivfedError("--reference-models: lira-online needs at least 2 reference models (IN and OUT)")
        phi = query.target_phi()
        mu_in, s_in = _gaussian(ref.phi, ref.in_mask, self.fixed_variance)
        mu_out, s_out = _gaussian(ref.phi, ~ref.in_mask, self.fixed_variance)
        if self.fixed_variance:
            # one variance for IN and OUT (as the reference code does): the ratio is then
            # monotone in phi, so a non-member far below both means cannot look "IN"
            # just because the IN fit is wider.
            n_in, n_out = ref.in_mask.sum(), (~ref.in_mask).sum()
            pooled = np.sqrt((s_in[0] ** 2 * n_in + s_out[0] ** 2 * n_out) / (n_in + n_out))
            s_in = s_out = np.full(phi.shape, pooled)
        return norm.logpdf(phi, mu_in, s_in) - norm.logpdf(phi, mu_out, s_out)


@register_attack
class LiRAOffline(_LiRA):
    name = "lira-offline"
    requires = frozenset({"target", "offline_reference"})
    threat_model = (
        "The attacker trains reference models only on data it already holds (the server's split) "
        "and tests how far above their OUT distribution the target's confidence lies."
    )

    def score(self, query: MembershipQuery) -> np.ndarray:
        ref: ReferenceSignals = require_reference(query.offline, "lira-offline")
        phi = query.target_phi()
        mu_out, s_out = _gaussian(ref.phi, ~ref.in_mask, self.fixed_variance)
        return -norm.logsf(phi, mu_out, s_out)
