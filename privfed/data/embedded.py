"""The brain-MRI subset shipped inside privfed, so ``privfed train`` works with no download.

``brain_mri_64.npz`` holds a class-balanced random subset of the cleaned Brain Tumor MRI
Dataset (Nickparvar, 2021, CC0; built from figshare (Cheng et al., 2017, CC BY 4.0), SARTAJ
and Br35H), greyscale 64 x 64 uint8, with the original relative file names as ids. It is
made by ``scripts/build_embedded_dataset.py``; see ``embedded/README.md`` for credits.
"""

from __future__ import annotations

from pathlib import Path

from privfed.data.npz import NpzDataset
from privfed.errors import PrivfedError

EMBEDDED_NAME = "embedded"
EMBEDDED_PATH = Path(__file__).with_name("embedded") / "brain_mri_64.npz"


def open_embedded(image_size: int) -> NpzDataset:
    """The embedded subset, resized to ``image_size`` (its stored side is 64)."""
    if not EMBEDDED_PATH.is_file():
        raise PrivfedError(
            f"the embedded dataset is missing ({EMBEDDED_PATH}); reinstall privfed, or rebuild it with "
            "'python scripts/build_embedded_dataset.py --source ../shared/data/brain-mri'"
        )
    return NpzDataset(EMBEDDED_PATH, image_size, source=EMBEDDED_NAME)
