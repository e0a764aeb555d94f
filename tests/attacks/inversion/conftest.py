"""Tiny fixtures for inversion tests: smooth grey 32x32 images and a seeded `simple` model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from privfed.models import build_model


def smooth_images(n: int, size: int = 32, coarse: int = 16, seed: int = 0) -> torch.Tensor:
    """Grey images in [0, 1]: coarse random grids upsampled bicubically (MRI-like smoothness)."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 1, max(size // coarse, 2), max(size // coarse, 2)), generator=generator)
    images = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return images.expand(-1, 3, -1, -1).contiguous()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def simple_model():
    torch.manual_seed(0)
    return build_model("simple", num_classes=2, image_size=32, shared_width=64).eval()


@pytest.fixture
def smooth():
    """The :func:`smooth_images` factory, as a fixture (test folders are not packages)."""
    return smooth_images
