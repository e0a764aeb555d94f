"""PNG grids of reconstructions and of the originals, saved apart so reports can redact the latter."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from privfed.io import atomic_write_bytes


def image_grid(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """N x 3 x S x S in [0, 1] -> H x W x 3 uint8, images left to right, then top to bottom."""
    images = images.detach().cpu().float().clamp(0, 1)
    n, _, h, w = images.shape
    columns = columns or min(n, 8)
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = images[i].permute(1, 2, 0).numpy()
    return (grid * 255 + 0.5).astype(np.uint8)


def save_grid(path: Path, images: torch.Tensor, columns: int | None = None) -> None:
    buffer = io.BytesIO()
    Image.fromarray(image_grid(images, columns)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
