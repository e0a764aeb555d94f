"""Tiny synthetic data for membership tests: 32x32 random block images with random labels.

Random labels can only be learned by memorising, which makes "member" a clean ground
truth: a model fits its own samples and is at chance on everything else. Blocks (8x8
binary noise upsampled) rather than pixel noise, because the small conv net cannot
memorise pixel noise in a few epochs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

IMAGE_SIZE = 32


def noise_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    blocks = (torch.rand(n, 3, 8, 8, generator=g) > 0.5).float()
    return F.interpolate(blocks, size=IMAGE_SIZE, mode="nearest"), torch.randint(0, 2, (n,), generator=g)


@pytest.fixture(scope="session")
def noise():
    return noise_data


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
