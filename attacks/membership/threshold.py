"""Loss-threshold attack: the baseline every other attack must beat.

Yeom et al., "Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting"
(CSF 2018, https://arxiv.org/abs/1709.01604): a model's loss on its training examples is
lower than on unseen ones, so "member iff loss < tau" already measures overfitting. The
score is minus the cross-entropy, i.e. log of the true-class confidence, so the loss and
confidence thresholds give the same ROC. No reference models, no extra data.
"""

from __future__ import annotations

import numpy as np

from attacks.membership.base import MembershipAttack, MembershipQuery, register_attack
from attacks.membership.signals import cross_entropy


@register_attack
class LossThresholdAttack(MembershipAttack):
    name = "loss"
    requires = frozenset({"target"})
    threat_model = "The attacker queries the attacked model on each candidate and thresholds its loss (no reference models, no extra data)."
    paper = "Yeom et al. 2018, https://arxiv.org/abs/1709.01604"

    def score(self, query: MembershipQuery) -> np.ndarray:
        return -cross_entropy(query._need(query.target_logits, "target_logits"), query.labels)
