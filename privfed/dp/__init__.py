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

from importlib import import_module

from privfed.dp.config import DEFAULT_DELTA, LEVEL_HELP, LEVELS, DPConfig, default_delta

# Opacus takes seconds to import; load it only when a private run or an accountant needs it,
# so `privfed --help`, `privfed data ...` and `privfed report` start fast.
_LAZY = {
    "epsilon_for": "privfed.dp.accounting",
    "solve_noise_multiplier": "privfed.dp.accounting",
    "ClientLevelPrivacy": "privfed.dp.client_level",
    "clip_and_noise": "privfed.dp.client_level",
    "SampleLevelPrivacy": "privfed.dp.sample_level",
    "poisson_steps_per_epoch": "privfed.dp.sample_level",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name == "DP_LEVELS":
        return dp_levels()
    raise AttributeError(f"module 'privfed.dp' has no attribute {name!r}")


def dp_levels():
    """--dp-level name -> privacy class ("none" has no class)."""
    from privfed.dp.client_level import ClientLevelPrivacy
    from privfed.dp.sample_level import SampleLevelPrivacy
    from privfed.registry import Registry

    registry: Registry[type] = Registry("dp level", "--dp-level")
    registry.add("sample", SampleLevelPrivacy)
    registry.add("client", ClientLevelPrivacy)
    return registry


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
