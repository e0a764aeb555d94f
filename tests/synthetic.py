"""Tiny in-memory data with the attributes of privfed.data.ImageDataset and Split.

Shared by the engine and reliability tests: 32x32 images whose class 1 has a bright square,
exact multiples of 1/255 (so uint8 storage is lossless), and a hand-cut split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


class SyntheticDataset:
    """Same attributes as privfed.data.ImageDataset; images are exact multiples of 1/255."""

    def __init__(self, n: int = 60, image_size: int = 32, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.classes = ["normal", "tumor"]
        self.image_size = image_size
        self.ids = [f"s{i:03d}" for i in range(n)]
        self.labels = np.array([i % 2 for i in range(n)], dtype=np.int64)
        self._images = self.make_images(rng, n, image_size)
        self._index = {sid: i for i, sid in enumerate(self.ids)}

    @staticmethod
    def make_images(rng: np.random.Generator, n: int, image_size: int) -> torch.Tensor:
        """Noise in [0, 120/255]; odd samples (class 1) get a square 120/255 brighter."""
        pixels = rng.integers(0, 120, size=(n, 3, image_size, image_size)).astype(np.float32)
        pixels[1::2, :, 8:20, 8:20] += 120
        return torch.from_numpy(pixels / 255.0)

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
