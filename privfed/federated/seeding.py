"""Every random stream of a run is derived from (seed, purpose, round, client).

Structural determinism: instead of one global RNG whose state would have to be saved for
``--resume``, each consumer (client k's data order in round r, client sampling in round r,
DP noise, model initialisation) gets its own ``torch.Generator`` seeded from a hash of its
coordinates. A resumed run therefore draws exactly the numbers an uninterrupted run draws.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the run seed and any labels (stable across processes and versions)."""
    text = "/".join([str(int(seed)), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def generator(seed: int, *parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *parts))


@contextlib.contextmanager
def seeded(seed: int, *parts: object) -> Iterator[None]:
    """Seed torch's global RNG (for ``build_model``'s initialisers) without leaking the state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, *parts))
        yield


def sample_clients(seed: int, num_clients: int, clients_per_round: int, server_round: int) -> list[int]:
    """The clients taking part in a round: all, or a seeded draw shared by the engine and Flower."""
    if clients_per_round >= num_clients:
        return list(range(num_clients))
    order = torch.randperm(num_clients, generator=generator(seed, "sample", server_round))
    return sorted(int(k) for k in order[:clients_per_round])
