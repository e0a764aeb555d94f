"""``open_dataset``: one call from a ``--data`` value (or ``config["data"]``) to a dataset."""

from __future__ import annotations

from pathlib import Path

from privfed.data.base import ImageDataset, check_image_size
from privfed.data.embedded import EMBEDDED_NAME, open_embedded
from privfed.data.image_folder import ImageFolderDataset
from privfed.data.npz import NpzDataset
from privfed.errors import PrivfedError


def open_dataset(source: str | Path | None, image_size: int) -> ImageDataset:
    """``None``/``"embedded"`` -> the shipped subset; a folder -> one subfolder per class;
    a ``.npz`` file -> MedMNIST or plain arrays."""
    image_size = check_image_size(image_size)
    if source is None or str(source) == EMBEDDED_NAME:
        return open_embedded(image_size)
    path = Path(source).expanduser()
    if path.is_dir():
        return ImageFolderDataset(path, image_size)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return NpzDataset(path, image_size)
        raise PrivfedError(f"{path}: not a folder or an .npz file; pass a folder with one subfolder per class, an .npz file, or 'embedded'")
    raise PrivfedError(f"{path}: no such file or folder; pass a folder with one subfolder per class, an .npz file, or 'embedded'")
