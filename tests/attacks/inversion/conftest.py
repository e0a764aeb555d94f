"""Fixtures for inversion tests: real brain-MRI slices from the embedded data and a seeded `simple` model.

Known answers are measured on real MRI (dark background, skull outline, fine texture), not
on synthetic smooth images: smooth images are far easier to invert than the data the study
attacks. The first ``SERVER_IMAGES`` slices of a fixed permutation are the server's own
images (priors); attacked images are drawn from the rest, so the two never overlap.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch

from privfed.models import build_model

SERVER_IMAGES = 128


@lru_cache(maxsize=4)
def _embedded(size: int):
    from privfed.data import open_dataset

    dataset = open_dataset("embedded", size)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    return dataset, [dataset.ids[i] for i in order]


def mri_images(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` real MRI slices at ``size`` (N x 3 x S x S in [0, 1]) and their labels; never server images."""
    dataset, ids = _embedded(size)
    start = SERVER_IMAGES + seed * 16
    return dataset.load(ids[start : start + n])


def server_images(size: int = 32) -> torch.Tensor:
    dataset, ids = _embedded(size)
    return dataset.load(ids[:SERVER_IMAGES])[0]


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
def mri():
    """The :func:`mri_images` factory, as a fixture (test folders are not packages)."""
    return mri_images


@pytest.fixture
def server():
    """The :func:`server_images` factory, as a fixture."""
    return server_images
