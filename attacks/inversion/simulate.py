"""Simulating a client's local training, differentiably (for attacks) or for real (replays).

A FedAvg update is not a gradient: it is ``-lr * sum_t g_t`` over several local SGD steps,
each at different weights. Inverting Gradients (Geiping et al. 2020, section 5) attacks
it by simulating those steps on the candidate images with a differentiable functional SGD
and matching the resulting weight difference; :func:`simulate_update` does that with
``torch.func.functional_call``.

:func:`client_update` computes the update a client would really send from a batch of its
images, including the run's differential-privacy mechanism, for ``--batch-size`` /
``--local-steps`` replays:

* sample level (DP-SGD, Abadi et al. 2016, https://arxiv.org/abs/1607.00133): per-sample
  gradients clipped to ``max_grad_norm`` in L2 over all parameters, summed, Gaussian noise of
  std ``noise_multiplier * max_grad_norm`` added, divided by the batch size, as Opacus does;
* client level (DP-FedAvg, McMahan et al. 2018, https://arxiv.org/abs/1710.06963): the whole
  update is clipped to ``max_grad_norm`` and noise of std ``noise_multiplier * max_grad_norm``
  is added to it before it leaves the client.

Models are run in ``eval`` mode in both, so BatchNorm uses running statistics and a replay
and its attack see the same function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from attacks.inversion.base import ClientStep


@dataclass(frozen=True)
class DPMechanism:
    level: str = "none"  # none | sample | client
    noise_multiplier: float = 0.0
    max_grad_norm: float = 1.0

    @classmethod
    def from_config(cls, dp: dict | None, solved_noise_multiplier: float | None = None) -> DPMechanism:
        """The run's mechanism; ``solved_noise_multiplier``: the noise the run solved from
        ``--target-epsilon`` (summary.json's ``noise_multiplier``), which config.json leaves empty."""
        dp = dp or {}
        level = dp.get("level") or "none"
        if level == "none":
            return cls()
        noise = dp.get("noise_multiplier")
        if noise is None:
            noise = solved_noise_multiplier
        if noise is None:
            from privfed.errors import PrivfedError

            raise PrivfedError(
                "the run was trained with --target-epsilon and its solved noise multiplier is not recorded yet "
                "(summary.json is written when training ends); finish the run with 'privfed train --resume' first"
            )
        return cls(level, float(noise), float(dp.get("max_grad_norm") or 1.0))


def _batch_indices(step_index: int, batch_size: int, n: int) -> list[int]:
    batch = min(batch_size, n)
    return [(step_index * batch + j) % n for j in range(batch)]


def simulate_update(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    step: ClientStep,
    names: Iterable[str],
    create_graph: bool = True,
) -> dict[str, torch.Tensor]:
    """Differentiable ``after - before`` of the tensors ``names`` after the client's local steps.

    ``labels`` may be class indices or soft labels (N x C probabilities, as DLG optimises).
    The starting weights are constants; gradients flow to ``images`` (and soft labels).
    """
    names = list(names)
    start = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    trainable = names if step.local_steps <= 1 else list(start)
    current = {n: (p.requires_grad_(True) if n in trainable else p) for n, p in ((n, p.clone()) for n, p in start.items())}
    velocity: dict[str, torch.Tensor] = {}
    n = images.shape[0]
    for t in range(max(step.local_steps, 1)):
        idx = _batch_indices(t, step.batch_size, n)
        out = functional_call(model, {**current, **buffers}, (images[idx],))
        loss = F.cross_entropy(out, labels[idx])
        grads = torch.autograd.grad(loss, [current[k] for k in trainable], create_graph=create_graph)
        for k, g in zip(trainable, grads):
            if step.momentum:
                g = g if k not in velocity else step.momentum * velocity[k] + g
                velocity[k] = g
            current[k] = current[k] - step.lr * g
    return {k: current[k] - start[k] for k in names}


def _per_sample_clipped_sum(model, params, buffers, x, y, max_norm):
    def loss_one(p, xi, yi):
        out = functional_call(model, {**p, **buffers}, (xi[None],))
        return F.cross_entropy(out, yi[None])

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_sample.values()))
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {k: (g * factor.view(-1, *([1] * (g.dim() - 1)))).sum(0) for k, g in per_sample.items()}


@torch.no_grad()
def client_update(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    step: ClientStep,
    names: Iterable[str],
    dp: DPMechanism = DPMechanism(),
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The update (``after - before`` of ``names``) a client sends after real local training.

    The steps are summed as they are taken, not read off as ``after - before``: with a small
    learning rate the float32 subtraction of two nearly equal weights loses most digits of
    the step (lr 1e-3 lost ~1 dB of the worst-case replay's leakage). A replay stands for the
    gradient message itself (FedSGD), which carries every digit.
    """
    names = list(names)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    current = {n: p.clone() for n, p in start.items()}
    moved = {n: torch.zeros_like(start[n]) for n in names}
    velocity: dict[str, torch.Tensor] = {}
    n = images.shape[0]

    def noise_like(t: torch.Tensor, std: float) -> torch.Tensor:
        return std * torch.randn(t.shape, generator=generator).to(t.device)

    for t in range(max(step.local_steps, 1)):
        idx = _batch_indices(t, step.batch_size, n)
        x, y = images[idx], labels[idx]
        if dp.level == "sample":
            summed = _per_sample_clipped_sum(model, current, buffers, x, y, dp.max_grad_norm)
            grads = {k: (g + noise_like(g, dp.noise_multiplier * dp.max_grad_norm)) / len(idx) for k, g in summed.items()}
        else:
            with torch.enable_grad():
                params = {k: v.requires_grad_(True) for k, v in current.items()}
                out = functional_call(model, {**params, **buffers}, (x,))
                values = torch.autograd.grad(F.cross_entropy(out, y), list(params.values()))
            grads = dict(zip(params, values))
        for k, g in grads.items():
            if step.momentum:
                g = g if k not in velocity else step.momentum * velocity[k] + g
                velocity[k] = g
            current[k] = current[k].detach() - step.lr * g
            if k in moved:
                moved[k] = moved[k] - step.lr * g
    update = moved
    if dp.level == "client":
        norm = torch.sqrt(sum(u.pow(2).sum() for u in update.values()))
        factor = min(1.0, dp.max_grad_norm / (float(norm) + 1e-12))
        update = {k: u * factor + noise_like(u, dp.noise_multiplier * dp.max_grad_norm) for k, u in update.items()}
    return update
