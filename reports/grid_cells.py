"""Cut one image out of an attack's PNG strip (the layout of ``attacks/inversion/grids.py``).

The attack runner saves up to 8 images per strip, left to right, each S x S pixels with a
2-pixel border around and between them, and keeps the strips of reconstructions, originals
and null guesses in the same order as the result's ``samples``. So sample ``i`` is cell
``i`` of each strip, and the report can show one reconstruction beside its own original
without any other file. PNGs are decoded by matplotlib (the report's only image library).
"""

from __future__ import annotations

import io

import numpy as np

PAD = 2


def decode_png(data: bytes) -> np.ndarray | None:
    """H x W (x C) array with values in [0, 1], or None for bytes that do not decode."""
    from matplotlib import image as mpl_image

    try:
        pixels = mpl_image.imread(io.BytesIO(data), format="png")
    except Exception:  # a damaged file must not break the report; the caller says "not shown"
        return None
    return np.asarray(pixels)


def cells_in_strip(pixels: np.ndarray) -> int | None:
    """Number of S x S cells in a one-row strip, or None when the shape is not such a strip."""
    height, width = pixels.shape[:2]
    size = height - 2 * PAD
    if size < 1 or (width - PAD) % (size + PAD):
        return None
    return (width - PAD) // (size + PAD)


def strip_cell(pixels: np.ndarray, index: int) -> np.ndarray | None:
    """Cell ``index`` of a one-row strip, or None when the strip is not laid out as expected."""
    count = cells_in_strip(pixels)
    if count is None or not 0 <= index < count:
        return None
    size = pixels.shape[0] - 2 * PAD
    left = PAD + index * (size + PAD)
    return pixels[PAD : PAD + size, left : left + size]
