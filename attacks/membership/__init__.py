"""Membership-inference attacks on privfed runs (issue 7).

Importing this package registers every attack in :data:`MEMBERSHIP_ATTACKS`:
``loss`` (Yeom et al. 2018), ``lira-online`` / ``lira-offline`` (Carlini et al. 2022),
``rmia-offline`` (Zarifzadeh et al. 2024) and ``update-cosine`` (the FL server's
update-alignment attack). :func:`attacks.membership.runner.run_membership_attacks` runs
them on a run directory; :mod:`attacks.metrics.membership` grades the scores.
"""

from attacks.membership import threshold, lira, rmia, update  # noqa: F401,I001  (registration order = CLI order)
from attacks.membership.base import (
    MEMBERSHIP_ATTACKS,
    MembershipAttack,
    MembershipQuery,
    ObservedUpdate,
    create_attack,
    register_attack,
)
from attacks.membership.reference import ReferenceSignals, balanced_halves, train_reference_signals
from attacks.membership.shadow import ShadowConfig, train_shadow_model

__all__ = [
    "MEMBERSHIP_ATTACKS",
    "MembershipAttack",
    "MembershipQuery",
    "ObservedUpdate",
    "ReferenceSignals",
    "ShadowConfig",
    "balanced_halves",
    "create_attack",
    "register_attack",
    "train_reference_signals",
    "train_shadow_model",
]
