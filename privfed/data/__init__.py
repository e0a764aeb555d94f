"""The data stage: image sources behind one interface, and client/server/test splits.

``open_dataset(source, image_size)`` turns a ``--data`` value (a class-per-subfolder image
folder, a MedMNIST-style ``.npz``, or ``"embedded"``/None for the shipped brain-MRI subset)
into an :class:`ImageDataset`; :func:`make_split` deals its sample ids to clients, server and
test set, and :func:`save_split`/:func:`load_split` read and write ``split.json``.
"""

from privfed.data.base import ImageDataset, SkippedImagesWarning
from privfed.data.embedded import EMBEDDED_PATH, open_embedded
from privfed.data.image_folder import ImageFolderDataset
from privfed.data.npz import NpzDataset
from privfed.data.sources import open_dataset
from privfed.data.split import PLANS, PartySizes, Split, SplitPlan, load_split, make_split, save_split

__all__ = [
    "EMBEDDED_PATH",
    "PLANS",
    "ImageDataset",
    "ImageFolderDataset",
    "NpzDataset",
    "PartySizes",
    "SkippedImagesWarning",
    "Split",
    "SplitPlan",
    "load_split",
    "make_split",
    "open_dataset",
    "open_embedded",
    "save_split",
]
