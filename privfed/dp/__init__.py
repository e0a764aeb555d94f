"""Differential privacy for privfed clients, through Opacus.

Two levels (see :data:`LEVEL_HELP`): ``sample`` runs DP-SGD inside each client
(:class:`SampleLevelPrivacy`), ``client`` clips and noises each client's update
(:class:`ClientLevelPrivacy`). Both keep one RDP accountant per client for the whole run.

Engine use (one privacy object per client, created once)::

    privacy = SampleLevelPrivacy(cfg, num_samples=n, batch_size=b,
                                 steps_per_round=epochs * poisson_steps_per_epoch(n, b), rounds=R)
    with privacy.training(model, optimizer, loader, generator) as (pmodel, popt, ploader):
        for x, y in ploader:           # Poisson batches: sizes vary, may be empty
            popt.zero_grad(); criterion(pmodel(x), y).backward(); popt.step()
    eps = privacy.epsilon()
"""

from privfed.dp.accounting import epsilon_for, solve_noise_multiplier
from privfed.dp.client_level import ClientLevelPrivacy, clip_and_noise
from privfed.dp.config import DEFAULT_DELTA, LEVEL_HELP, LEVELS, DPConfig, default_delta
from privfed.dp.sample_level import SampleLevelPrivacy, poisson_steps_per_epoch
from privfed.registry import Registry

#: --dp-level name -> privacy class ("none" has no class).
DP_LEVELS: Registry[type] = Registry("dp level", "--dp-level")
DP_LEVELS.add("sample", SampleLevelPrivacy)
DP_LEVELS.add("client", ClientLevelPrivacy)

__all__ = [
    "DEFAULT_DELTA",
    "DP_LEVELS",
    "LEVELS",
    "LEVEL_HELP",
    "ClientLevelPrivacy",
    "DPConfig",
    "SampleLevelPrivacy",
    "clip_and_noise",
    "default_delta",
    "epsilon_for",
    "poisson_steps_per_epoch",
    "solve_noise_multiplier",
]
