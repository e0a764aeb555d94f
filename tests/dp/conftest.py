from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from tests.synthetic import SyntheticDataset
from torch.utils.data import DataLoader, TensorDataset


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _tiny_loader(n: int = 16, batch_size: int = 4, size: int = 32, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


@pytest.fixture
def tiny_loader():
    """Factory for a small (images, labels) DataLoader: tiny_loader(n, batch_size, size, seed)."""
    return _tiny_loader


class SyntheticImages(SyntheticDataset):
    """The shared synthetic dataset, with continuous (not 1/255-quantised) pixels."""

    def __init__(self, n: int = 40, image_size: int = 32, seed: int = 0) -> None:
        self._seed = seed
        super().__init__(n, image_size, seed)

    def make_images(self, rng, n: int, image_size: int) -> torch.Tensor:
        images = torch.rand(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(self._seed))
        images[1::2, :, 8:20, 8:20] += 0.5
        return images.clamp_(0, 1)


@dataclass
class SyntheticSplit:
    clients: list[list[str]]
    server: list[str]
    test: list[str]
    seed: int = 0
    plan: dict = field(default_factory=lambda: {"name": "test"})
    classes: list[str] = field(default_factory=lambda: ["normal", "tumor"])


@pytest.fixture(scope="module")
def synthetic_images() -> SyntheticImages:
    return SyntheticImages()


def split_for(dataset: SyntheticImages, num_clients: int, per_client: int = 6, server: int = 6, test: int = 6) -> SyntheticSplit:
    ids = dataset.ids
    clients = [ids[k * per_client : (k + 1) * per_client] for k in range(num_clients)]
    start = num_clients * per_client
    return SyntheticSplit(clients, ids[start : start + server], ids[start + server : start + server + test])


@pytest.fixture
def make_split():
    return split_for
