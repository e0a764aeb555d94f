"""Turning any decoded image into a small uint8 array of a fixed side.

Every source (image folders, MedMNIST ``.npz`` files, the embedded subset) ends in the same
place: a square ``uint8`` array, 2-D for greyscale or ``H x W x 3`` for colour, resized with
Pillow's bilinear filter (which widens its support when shrinking, i.e. antialiases). Greyscale
scans stored as RGB are kept as one channel so a cache of them costs a third of the memory;
:meth:`~privfed.data.base.ImageDataset.load` repeats the channel to give 3-channel tensors.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

_RESAMPLE = Image.Resampling.BILINEAR
_EXIF_ORIENTATION = 0x0112


def to_l_or_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to ``L`` (grey) or ``RGB``, scaling 16/32-bit and float data.

    Medical images are often 16-bit PNG/TIFF; ``convert("L")`` would clip them, so their
    range is scaled into 0..255 instead.
    """
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in ("1", "LA", "La"):
        return image.convert("L")
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            scaled = values / 257.0
        else:
            low, high = float(values.min()), float(values.max())
            if low >= 0 and high <= 255 and mode == "I":
                scaled = values
            elif low >= 0 and high <= 1.0 and mode == "F":
                scaled = values * 255.0
            else:
                scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")  # P, PA, RGBA, CMYK, YCbCr, LAB, HSV, ...


def apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate photos that carry an EXIF orientation tag (cheap: the tag is already parsed)."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block should not make the image unusable
        return image
    return ImageOps.exif_transpose(image) if orientation not in (None, 1) else image


def squeeze_grey(array: np.ndarray) -> np.ndarray:
    """``H x W x 3`` with three equal channels (greyscale saved as RGB) -> ``H x W``."""
    if array.ndim == 3 and array.shape[2] == 3:
        if np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2]):
            return np.ascontiguousarray(array[..., 0])
    if array.ndim == 3 and array.shape[2] == 1:
        return np.ascontiguousarray(array[..., 0])
    return array


def resize_image(image: Image.Image, size: int) -> np.ndarray:
    """A Pillow image of any mode -> uint8 ``size x size`` (grey) or ``size x size x 3``."""
    image = to_l_or_rgb(image)
    if image.size != (size, size):
        image = image.resize((size, size), _RESAMPLE)
    return squeeze_grey(np.asarray(image, dtype=np.uint8))


def resize_array(array: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``H x W`` or ``H x W x 3`` -> the same at ``size x size`` (no copy if already there)."""
    array = squeeze_grey(array)
    if array.shape[0] == size and array.shape[1] == size:
        return array
    return resize_image(Image.fromarray(array, mode="L" if array.ndim == 2 else "RGB"), size)


def as_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """Images stored as uint8 pass through; floats in [0, 1] or [0, 255] are scaled and rounded."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        high = float(values.max()) if values.size else 0.0
        if high <= 1.0:
            values = values * 255.0
        elif high > 255.0:
            values = values * (255.0 / high)
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    from privfed.errors import PrivfedError

    raise PrivfedError(f"{where}: images have dtype {array.dtype}; expected uint8 (or floats in [0, 1])")
