from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
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


class SyntheticImages:
    """The attributes of privfed.data.ImageDataset the engine uses, on random 32x32 images."""

    def __init__(self, n: int = 40, image_size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.classes = ["normal", "tumor"]
        self.image_size = image_size
        self.ids = [f"s{i:03d}" for i in range(n)]
        self.labels = np.array([i % 2 for i in range(n)], dtype=np.int64)
        self._images = torch.rand(n, 3, image_size, image_size, generator=g)
        self._images[1::2, :, 8:20, 8:20] += 0.5
        self._images.clamp_(0, 1)
        self._index = {sid: i for i, sid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return self._images[i], int(self.labels[i]), self.ids[i]

    def load(self, ids):
        idx = [self._index[i] for i in ids]
        return self._images[idx].clone(), torch.as_tensor(self.labels[idx])


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
