"""Client-level DP on the update a client sends (McMahan et al. 2018, DP-FedAvg,
https://arxiv.org/abs/1710.06963; Geyer et al. 2017).

The client clips its whole update (the full model, or only ``shared`` for partial) to
L2 norm ``max_grad_norm`` and adds N(0, (noise_multiplier * max_grad_norm)^2) to every
coordinate, so one hospital's entire contribution has bounded influence. Accounting:
Opacus' RDP accountant, one step per participated round at sample rate 1, for the run's
neighbouring relation: by default *replacing* one hospital's data, which can move the
clipped update from +C to -C, a sensitivity of 2C, so the Gaussian mechanism is accounted
at noise multiplier sigma / 2 (``--neighbouring add-remove`` accounts sensitivity C, the
textbook DP-FedAvg figure, which assumes the message could be absent). Amplification
by client sampling (rate clients_per_round / num_clients) would assume the participant
set is secret, but privfed's adversary is the server, which picks the participants; so
the epsilon we report is the one that holds against it.
"""

from __future__ import annotations

import torch

from privfed.dp.accounting import AccountedPrivacy, PersistentAccountant, solve_noise_multiplier
from privfed.dp.config import DPConfig, default_delta
from privfed.errors import PrivfedError


def clip_and_noise(
    update: dict[str, torch.Tensor], max_grad_norm: float, noise_std: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Scale floating tensors so their joint L2 norm is <= max_grad_norm, then add noise.

    Noise is drawn on the generator's device in a fixed (sorted-name) order, so the result
    is reproducible under a seed whatever the dict order.
    """
    floats = {k: v for k, v in update.items() if torch.is_floating_point(v)}
    if not floats:
        return dict(update)
    norm = torch.sqrt(sum(v.detach().double().pow(2).sum() for v in floats.values()))
    scale = min(1.0, max_grad_norm / max(float(norm), 1e-12))
    out = dict(update)
    gen_device = generator.device
    for name in sorted(floats):
        value = floats[name].detach()
        clipped = value * scale
        if noise_std > 0:
            noise = torch.normal(0.0, noise_std, size=value.shape, generator=generator, device=gen_device)
            clipped = clipped + noise.to(value.device, value.dtype)
        out[name] = clipped
    return out


class ClientLevelPrivacy(AccountedPrivacy):
    """Privatises what one client sends each round; one instance per client for the run."""

    level = "client"

    def __init__(self, config: DPConfig, num_clients: int, clients_per_round: int, rounds: int) -> None:
        config.validate()
        if num_clients < 1 or not 1 <= clients_per_round <= num_clients:
            raise PrivfedError(
                f"--clients-per-round must be between 1 and --num-clients ({num_clients}), got {clients_per_round}"
            )
        self.config = config
        self.sample_rate = 1.0  # the server chooses participants: no amplification against it
        self.delta = float(config.delta) if config.delta is not None else default_delta(num_clients)
        self.max_grad_norm = float(config.max_grad_norm)
        self.neighbouring = config.relation
        factor = config.sensitivity_factor  # noise std sigma C against a sensitivity of factor x C
        if config.noise_multiplier is not None:
            self.noise_multiplier = float(config.noise_multiplier)
        else:
            self.noise_multiplier = factor * solve_noise_multiplier(
                float(config.target_epsilon), self.delta, self.sample_rate, max(1, int(rounds)), f"{rounds} rounds"
            )
        self._accountant = PersistentAccountant(self.noise_multiplier / factor, self.sample_rate, self.delta)

    @property
    def steps(self) -> int:
        return self._accountant.steps

    def privatize(self, update: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Clip the joint norm of ``update`` and add Gaussian noise; records one accountant step."""
        out = clip_and_noise(update, self.max_grad_norm, self.noise_multiplier * self.max_grad_norm, generator)
        self._accountant.step()
        return out

