"""Tiny synthetic data for engine tests: 32x32 images, class 1 has a bright square."""

from __future__ import annotations


import pytest
import torch

from privfed.federated import TrainConfig
from tests.synthetic import SyntheticDataset, TinySplit  # noqa: F401  (re-exported to the tests)

torch.set_num_threads(1)


def make_tiny_split(dataset: SyntheticDataset, num_clients: int, sizes: list[int] | None = None, server: int = 8, test: int = 12) -> TinySplit:
    sizes = sizes or [10] * num_clients
    ids = list(dataset.ids)
    clients, start = [], 0
    for size in sizes:
        clients.append(ids[start : start + size])
        start += size
    return TinySplit(clients, ids[start : start + server], ids[start + server : start + server + test])


@pytest.fixture
def dataset() -> SyntheticDataset:
    return SyntheticDataset()


def tiny_config(**changes) -> TrainConfig:
    base = dict(
        algorithm="fedavg", num_clients=2, archs=["simple"], shared_width=16, rounds=2, batch_size=8, lr=0.05,
        image_size=32, data="synthetic", plan={"kind": "fractions"}, device="cpu", observe="first,last",
    )
    base.update(changes)
    return TrainConfig(**base)
