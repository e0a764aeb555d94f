"""One client's round: load what the server sent, train locally, return what to send.

Kept free of engine state so a Flower ``ClientApp`` can call :func:`client_round` with the
tensors from its message and reply with the returned :class:`ClientUpdate`. The optimizer
is created fresh every round (common FL practice: momentum/Adam state does not survive
aggregation), so nothing but the model needs to be checkpointed, and every random draw
comes from the ``generator`` the caller derives from (seed, round, client).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from privfed.errors import PrivfedError
from privfed.federated.evaluation import as_float
from privfed.models.batch_norm import recalibrate_batch_norm
from privfed.federated.fednova import momentum_a_norm
from privfed.federated.strategy import ClientUpdate, LocalSettings

#: progress callback: (steps done, steps planned, running mean loss)
BatchCallback = Callable[[int, int, float], None]


@dataclass
class TrainStats:
    num_samples: int
    local_steps: int
    a_norm: float
    train_loss: float


def planned_steps(num_samples: int, settings: LocalSettings) -> int:
    return settings.epochs * math.ceil(num_samples / settings.batch_size) if num_samples else 0


def make_optimizer(model: nn.Module, settings: LocalSettings) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum)
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr)
    raise PrivfedError(f"--optimizer: unknown optimizer {settings.optimizer!r}; choose sgd or adam")


def _check_finite(value: float, where: str, step: int) -> None:
    if not math.isfinite(value):
        raise PrivfedError(
            f"{where}: training loss became {value} at local step {step}; the model diverged. "
            "Lower --lr (or raise --batch-size); finished rounds are kept in the run directory"
        )


def _check_weights(model: nn.Module, where: str, steps: int) -> None:
    """The loss is checked before each step; the last step can still overflow the weights."""
    params = list(model.named_parameters())
    if not params or bool(torch.stack([torch.isfinite(p).all() for _, p in params]).all()):
        return  # one device sync for the whole model
    for name, param in params:
        if not bool(torch.isfinite(param).all()):
            raise PrivfedError(
                f"{where}: weight {name} became NaN or infinite after {steps} local steps; the model diverged. "
                "Lower --lr (or raise --batch-size); finished rounds are kept in the run directory"
            )


def class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-class loss weights n / (P n_c) over the P classes present: their mean over images is 1.

    The balanced weighting of King & Zeng (2001) as scikit-learn's ``class_weight="balanced"``;
    a class absent from the party gets weight 0 (it never occurs in a batch).
    """
    counts = torch.bincount(labels.detach().cpu().long()).double()
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.float()


def train_local(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: LocalSettings,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    *,
    sample_privacy: Any | None = None,
    on_batch: BatchCallback | None = None,
    where: str = "local training",
) -> TrainStats:
    """Train ``model`` in place for ``settings.epochs`` epochs over (images, labels).

    ``settings.mu > 0`` adds FedProx's mu/2 ||w - w_start||^2 with w_start the weights at
    entry. ``sample_privacy`` (a :class:`privfed.dp.SampleLevelPrivacy`) switches to
    Opacus DP-SGD with Poisson sampling. A non-finite loss raises :class:`PrivfedError`
    naming ``where``. Without DP, BatchNorm statistics are then recomputed over the party's
    images (:mod:`privfed.models.batch_norm`: lagging running averages made MobileNetV3
    clients constant predictors in evaluation mode).
    """
    device = torch.device(device)
    model.to(device).train()
    n = len(labels)
    if n == 0:
        return TrainStats(0, 0, 0.0, math.nan)
    optimizer = make_optimizer(model, settings)
    anchor = None
    if settings.mu > 0:
        anchor = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    total = planned_steps(n, settings)

    def proximal() -> torch.Tensor:
        """FedProx: mu/2 ||w - w_start||^2 (Li et al. 2020)."""
        params = [p for p in model.parameters() if p.requires_grad]
        return (settings.mu / 2) * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
    loss_sum, seen, steps = 0.0, 0, 0
    weights = class_weights(labels).to(device) if settings.balance_classes else None
    # Speed settings apply to non-private steps only (the config refuses them with DP-SGD).
    fast = sample_privacy is None
    layout = torch.channels_last if fast and settings.channels_last else torch.contiguous_format
    if layout is torch.channels_last:
        model.to(memory_format=layout)
    bf16 = fast and settings.precision == "bf16"

    def step(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
        nonlocal loss_sum, seen, steps
        opt.zero_grad(set_to_none=True)
        # sum / max(n, 1): the mean for real batches, and a defined (zero-data) loss for an empty
        # Poisson batch, whose noise-only DP step must still be taken and accounted. Class
        # weights scale each image's own loss, so per-sample clipping under DP still bounds it.
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        per_image = F.cross_entropy(logits.float(), y, reduction="none")
        if weights is not None:
            per_image = per_image * weights[y]
        loss = per_image.sum() / max(len(y), 1)
        objective = loss
        if anchor is not None and sample_privacy is None:
            objective = loss + proximal()
        objective.backward()
        opt.step()
        value = loss.item()
        steps += 1
        _check_finite(value, where, steps)
        loss_sum += value * len(y)
        seen += len(y)
        if on_batch is not None:
            on_batch(steps, total, loss_sum / max(seen, 1))

    if sample_privacy is None:
        # On an accelerator the party's (uint8) images go over once, not once per batch.
        on_device = (images.to(device), labels.to(device)) if device.type != "cpu" else (images, labels)
        for _ in range(settings.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, settings.batch_size):
                index = order[start : start + settings.batch_size]
                x = as_float(on_device[0][index]).contiguous(memory_format=layout)
                step(model, optimizer, x, on_device[1][index])
    else:
        dataset = torch.utils.data.TensorDataset(images, labels)
        loader = torch.utils.data.DataLoader(dataset, batch_size=settings.batch_size)
        with sample_privacy.training(model, optimizer, loader, generator) as (private_model, private_opt, poisson):
            if anchor is not None:  # a loss term would be dropped by DP-SGD: add it after noising
                private_opt.set_regularizer(proximal)
            for _ in range(settings.epochs):
                for x, y in poisson:  # may be empty (probability (1-q)^n): still a noise-only step
                    step(private_model, private_opt, as_float(x).to(device), y.to(device))
    if layout is torch.channels_last:  # what leaves this function (state dicts, safetensors) is contiguous
        model.to(memory_format=torch.contiguous_format)
    _check_weights(model, where, steps)
    if sample_privacy is None:  # DP models have no BatchNorm (and a pass over the data would not be private)
        recalibrate_batch_norm(model, images, batch_size=max(settings.batch_size, 64), device=device)
    if settings.optimizer == "sgd":
        a_norm = momentum_a_norm(steps, settings.momentum)
    else:
        a_norm = float(steps)
    return TrainStats(n, steps, a_norm, loss_sum / seen if seen else math.nan)


def client_round(
    client: int,
    model: nn.Module,
    received: Mapping[str, torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: LocalSettings,
    generator: torch.Generator,
    payload: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]],
    device: torch.device | str = "cpu",
    *,
    sample_privacy: Any | None = None,
    client_privacy: Any | None = None,
    noise_generator: torch.Generator | None = None,
    on_batch: BatchCallback | None = None,
    server_round: int | None = None,
) -> ClientUpdate:
    """Load ``received`` (all or part of a state dict), train, and return what the client sends.

    ``payload`` picks the tensors to send (a strategy's ``payload``). With client-level DP
    the floating tensors sent are before + privatize(after - before); the client keeps its
    own, un-noised weights.
    """
    if received:
        _load_partial(model, received)
    before = payload(model.state_dict())
    where = f"client {client}" + (f", round {server_round}" if server_round is not None else "")
    stats = train_local(
        model, images, labels, settings, generator, device, sample_privacy=sample_privacy, on_batch=on_batch, where=where
    )
    sent = payload(model.state_dict())
    if client_privacy is not None:
        update = {k: sent[k] - before[k] for k in sent if sent[k].is_floating_point()}
        noisy = client_privacy.privatize(update, noise_generator if noise_generator is not None else generator)
        for name, delta in noisy.items():
            sent[name] = before[name] + delta.to(before[name])
    sent = {k: v.detach().to("cpu").contiguous() for k, v in sent.items()}
    return ClientUpdate(client, sent, stats.num_samples, stats.local_steps, stats.a_norm, stats.train_loss)


def _load_partial(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    state = model.state_dict()
    unknown = [name for name in tensors if name not in state]
    if unknown:
        raise PrivfedError(f"received tensors {unknown} that the model does not have; the architectures differ")
    with torch.no_grad():
        for name, tensor in tensors.items():
            if state[name].shape != tensor.shape:
                raise PrivfedError(
                    f"received {name} of shape {tuple(tensor.shape)} for a model whose {name} is {tuple(state[name].shape)}"
                )
            state[name].copy_(tensor)
