"""One interface for every gradient-inversion attack, in the shape of breaching's attackers.

Every attack takes the same :class:`Observation` (what the server saw of one client in one
round, plus the model the attacker believes the client started from) and returns a
:class:`Reconstruction` (images, labels, optional features, statistics). Attacks take plain
tensors and modules, never a run directory: :mod:`attacks.inversion.runner` adapts a run to
them, and :mod:`attacks.metrics` scores them against the truth, which attacks never see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from attacks.inversion.priors import ImagePrior
from privfed.registry import Registry

TARGETS = ("full-model", "shared-layer")


@dataclass(frozen=True)
class ClientStep:
    """How the client trained between ``before`` and ``received`` (from meta.json or a replay).

    The update the server sees is ``-lr * sum_t g_t`` over ``local_steps`` SGD steps (with
    momentum the steps are weighted); attacks simulate it to match it.
    """

    lr: float = 0.01
    local_steps: int = 1
    batch_size: int = 1
    momentum: float = 0.0
    optimizer: str = "sgd"


@dataclass
class Observation:
    """Everything an attack may use.

    ``model``: the client's model at the start of the round as the attacker knows it (per
    knowledge level). ``update``: ``received - before`` for the tensors the client sent
    (all parameters for full-model targets; ``shared.weight``/``shared.bias`` for the shared
    layer). ``num_images``: how many images the attack reconstructs.
    """

    model: nn.Module
    update: dict[str, torch.Tensor]
    step: ClientStep
    num_images: int
    image_size: int
    num_classes: int
    target: str = "full-model"
    prior: ImagePrior = field(default_factory=ImagePrior)
    labels: torch.Tensor | None = None  # labels known in advance (tests); None = recover them

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def one_gradient_step(self) -> bool:
        """Whether the update is one plain gradient: then a linear layer's row ratios are single images' inputs."""
        return self.step.local_steps <= 1 and self.step.optimizer == "sgd" and not self.step.momentum

    def gradient_estimate(self, name: str) -> torch.Tensor:
        """The mean per-step gradient of ``name``: -update / (lr * local_steps)."""
        return -self.update[name] / (self.step.lr * max(self.step.local_steps, 1))


@dataclass
class Reconstruction:
    """What an attack returns: images in [0, 1] (N x 3 x S x S) and the labels it assigns."""

    images: torch.Tensor
    labels: torch.Tensor
    iterations: int
    features: torch.Tensor | None = None  # recovered input of `shared` (shared-layer attacks)
    stats: dict = field(default_factory=dict)


class InversionAttack:
    """Base class: subclasses set ``name``, ``targets``, ``default_iterations``, ``paper``."""

    name: str = ""
    targets: tuple[str, ...] = TARGETS
    default_iterations: int = 100
    paper: str = ""
    #: run when ``--method`` is not given: the strongest attack of each target, measured by
    #: bench/inversion.py (``--method all`` runs every registered one)
    in_default: bool = False
    #: the priors (names from :meth:`ImagePrior.names`) this attack actually uses
    priors_used: tuple[str, ...] = ("box", "greyscale", "tv", "server-mean-init", "server-feature-stats")

    def priors(self, prior: ImagePrior) -> list[str]:
        return [name for name in prior.names() if name in self.priors_used]

    def __init__(self, iterations: int | None = None, seed: int = 0) -> None:
        self.iterations = self.default_iterations if iterations is None else int(iterations)
        self.seed = seed

    def reconstruct(self, observation: Observation) -> Reconstruction:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(iterations={self.iterations})"


#: method name -> attack class (CLI ``--method`` choices come from here).
INVERSION_METHODS: Registry[type[InversionAttack]] = Registry("inversion method", "--method")


def methods_for(target: str) -> list[str]:
    return [name for name in INVERSION_METHODS if target in INVERSION_METHODS.get(name).targets]
