"""One interface for every membership attack, and the registry the CLI's choices come from.

Like breaching's attackers, every attack takes the same observation (:class:`MembershipQuery`:
the attacked model's outputs on the candidates, plus whatever reference signals or observed
updates it declares in ``requires``) and returns one score per candidate, higher meaning
"more likely a member". Attacks never see the membership labels: grading is done by
:mod:`attacks.metrics.membership`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from attacks.membership.reference import ReferenceSignals
from attacks.membership.signals import true_class_phi, true_class_prob
from privfed.errors import PrivfedError
from privfed.registry import Registry

#: What an attack can ask for (the runner computes only what some selected attack needs).
REQUIREMENTS = ("target", "offline_reference", "online_reference", "population", "updates")


@dataclass
class ObservedUpdate:
    """One round of one client as the server saw it.

    ``model`` is the client's model at the start of the round as the attacker knows it;
    ``direction`` = before - received, i.e. minus the client's update, which for SGD is a
    positive multiple of the summed gradients of its training batches.
    """

    round: int
    model: nn.Module
    direction: dict[str, torch.Tensor]


@dataclass
class MembershipQuery:
    """Everything an attack may read about N candidates (members and non-members mixed)."""

    images: torch.Tensor
    labels: torch.Tensor
    target_logits: torch.Tensor | None = None
    offline: ReferenceSignals | None = None
    online: ReferenceSignals | None = None
    #: target-model logits and offline reference signals on Z population samples (RMIA's z)
    population_logits: torch.Tensor | None = None
    population_labels: torch.Tensor | None = None
    population_offline: ReferenceSignals | None = None
    updates: list[ObservedUpdate] = field(default_factory=list)
    device: str | torch.device = "cpu"

    def target_phi(self) -> np.ndarray:
        return true_class_phi(self._need(self.target_logits, "target_logits"), self.labels)

    def target_prob(self) -> np.ndarray:
        return true_class_prob(self._need(self.target_logits, "target_logits"), self.labels)

    @staticmethod
    def _need(value, name: str):
        if value is None:
            raise ValueError(f"this attack needs {name} in its MembershipQuery")
        return value


class MembershipAttack(ABC):
    """Score candidates; subclasses set ``name``, ``requires``, ``threat_model``, ``paper``."""

    name: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset({"target"})
    #: one sentence: what the attacker has and does
    threat_model: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: run when no --method is given; off for attacks that cost much and add little at a
    #: handful of reference models (``--method all`` runs every one)
    in_default: ClassVar[bool] = True

    @abstractmethod
    def score(self, query: MembershipQuery) -> np.ndarray:
        """One score per candidate; higher = more likely a member."""

    def params(self) -> dict:
        """Hyper-parameters worth recording beside the result."""
        return {}


MEMBERSHIP_ATTACKS: Registry[type[MembershipAttack]] = Registry("membership method", "--method")


def register_attack(cls: type[MembershipAttack]) -> type[MembershipAttack]:
    MEMBERSHIP_ATTACKS.add(cls.name, cls)
    return cls


def create_attack(name: str, **params) -> MembershipAttack:
    """Instantiate a registered attack, passing only the parameters its constructor takes."""
    cls = MEMBERSHIP_ATTACKS.get(name)
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in params.items() if k in accepted})


def require_reference(signals: ReferenceSignals | None, kind: str) -> ReferenceSignals:
    if signals is None or signals.n_models == 0:
        raise PrivfedError(f"--reference-models: the {kind} attack needs reference models; pass --reference-models 2 or more")
    return signals
