"""Tiny synthetic image folders and .npz files, and the real brain-MRI folder when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: ../shared/data/brain-mri beside the checkout (absent on a fresh user's machine).
BRAIN_MRI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "brain-mri"


@pytest.fixture
def brain_mri() -> Path:
    if not (BRAIN_MRI / "normal").is_dir():
        pytest.skip(f"real data not present: {BRAIN_MRI} (only in the project workspace)")
    return BRAIN_MRI


def solid(path: Path, value, mode: str = "L", size: tuple[int, int] = (40, 40), **save) -> Path:
    """A one-colour image: after any bilinear resize every pixel is still ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path, **save)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """tumor/ and normal/ with grey PNG, RGB PNG, grey JPEG, and a nested file."""
    root = tmp_path / "images"
    solid(root / "normal" / "a.png", 10)
    solid(root / "normal" / "b.png", (200, 0, 0), mode="RGB", size=(50, 30))
    solid(root / "normal" / "c.jpg", 128, quality=100)
    solid(root / "tumor" / "x.png", 250)
    solid(root / "tumor" / "sub" / "y.png", 60)
    (root / "tumor" / "notes.txt").write_text("not an image")
    (root / "manifest.csv").write_text("file,label\n")
    return root


@pytest.fixture
def make_image():
    """``make_image(path, value, mode="L", size=(40, 40), **save)`` writes a one-colour image."""
    return solid


@pytest.fixture
def make_medmnist():
    """``make_medmnist(path, sizes=(6, 2, 3), side=28, colour=False, **extra_arrays)``."""
    return write_medmnist


def write_medmnist(path: Path, sizes=(6, 2, 3), side: int = 28, colour: bool = False, **extra) -> Path:
    """MedMNIST-layout .npz whose image i of split s is the constant ``10 * (s_index) + i``."""
    arrays = {}
    for s, (name, n) in enumerate(zip(("train", "val", "test"), sizes)):
        if n is None:
            continue
        values = (10 * s + np.arange(n)).astype(np.uint8)
        images = np.broadcast_to(values[:, None, None], (n, side, side)).copy()
        if colour:
            images = np.stack([images, images // 2, np.zeros_like(images)], axis=-1)
        arrays[f"{name}_images"] = images
        arrays[f"{name}_labels"] = (np.arange(n) % 2).reshape(n, 1)
    arrays.update(extra)
    np.savez_compressed(path, **arrays)
    return path
