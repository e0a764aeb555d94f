"""The attacker's own training loop for reference ("shadow") models.

Shadow models (Shokri et al. 2017; the reference models of LiRA and RMIA) stand in for
"the same training run without / with this example". The attacker knows the architecture
and roughly the recipe (the server picked both), so we build the attacked model's
architecture with :func:`privfed.models.build_model` and train it with plain minibatch
SGD. Attacks never import ``privfed.federated``: a real attacker writes its own loop, and
keeping it here means the attack cannot accidentally reuse the victim's state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from privfed.errors import PrivfedError
from privfed.models import SharedHeadModel, build_model
from privfed.models.batch_norm import recalibrate_batch_norm


@dataclass(frozen=True)
class ShadowConfig:
    """Recipe of one reference model; small and deterministic by default."""

    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 32
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"  # or "adam", as the run's config says


def train_shadow_model(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    arch: str,
    image_size: int,
    shared_width: int,
    num_classes: int = 2,
    dp: bool = False,
    config: ShadowConfig = ShadowConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> SharedHeadModel:
    """Train a fresh ``arch`` model on ``(images, labels)``; same seed, same weights.

    ``dp`` only selects the Opacus-compatible variant (GroupNorm) so that the reference
    models match a DP-trained victim's architecture; the training itself is not private
    (the attacker has no reason to add noise).
    """
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(arch, num_classes=num_classes, image_size=image_size, shared_width=shared_width, dp=dp)
    model.to(device).train()
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        raise PrivfedError(f"reference-model optimizer {config.optimizer!r} is not supported; use sgd or adam")
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    n = len(images)
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            if len(batch) < 2 and n >= 2:
                continue  # a batch of one breaks BatchNorm and adds only noise
            x, y = images[batch].to(device), labels[batch].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
    recalibrate_batch_norm(model, images, device=device)  # as the victim's training does
    return model.eval()
