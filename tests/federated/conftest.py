"""Tiny synthetic data for engine tests: 32x32 images, class 1 has a bright square."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from privfed.federated import TrainConfig

torch.set_num_threads(1)


class SyntheticDataset:
    """Same attributes as privfed.data.ImageDataset; images are exact multiples of 1/255."""

    def __init__(self, n: int = 60, image_size: int = 32, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.classes = ["normal", "tumor"]
        self.image_size = image_size
        self.ids = [f"s{i:03d}" for i in range(n)]
        self.labels = np.array([i % 2 for i in range(n)], dtype=np.int64)
        pixels = rng.integers(0, 120, size=(n, 3, image_size, image_size)).astype(np.float32)
        for i in range(n):
            if self.labels[i] == 1:
                pixels[i, :, 8:20, 8:20] += 120
        self._images = torch.from_numpy(pixels / 255.0)
        self._index = {sid: i for i, sid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return self._images[i], int(self.labels[i]), self.ids[i]

    def load(self, ids):
        idx = [self._index[i] for i in ids]
        return self._images[idx].clone(), torch.as_tensor(self.labels[idx])


@dataclass
class TinySplit:
    clients: list[list[str]]
    server: list[str]
    test: list[str]
    seed: int = 0
    plan: dict = field(default_factory=lambda: {"kind": "fractions"})
    classes: list[str] = field(default_factory=lambda: ["normal", "tumor"])


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
