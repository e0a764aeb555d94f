"""Arrays in an ``.npz`` file: the MedMNIST layout, or plain ``images``/``labels``/``ids``.

MedMNIST (Yang et al., 2023, https://medmnist.com) ships ``train_images``/``train_labels``
(and ``val_*``, ``test_*``), images ``N x H x W`` (grey) or ``N x H x W x 3``, labels ``N``
or ``N x 1``. privfed makes its own client/server/test split, so all present splits are
merged into one pool by default; ids keep the split name (``train/000123``) so a sample can
be traced back. The plain layout (``images``, ``labels``, optional ``ids``, ``classes`` and
``credits``) is what the embedded brain-MRI subset uses. Files are read with
``allow_pickle=False``: an ``.npz`` holding pickled objects is refused, never executed.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from privfed.data.base import DEFAULT_CACHE_BYTES, ImageDataset
from privfed.data.pixels import as_uint8, resize_array
from privfed.errors import PrivfedError

MEDMNIST_SPLITS = ("train", "val", "test")
SPLIT_CHOICES = ("all", *MEDMNIST_SPLITS)


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise PrivfedError(f"{path}: file not found; pass an existing .npz file, an image folder, or 'embedded'")
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise PrivfedError(f"{path}: not a readable .npz file (not a zip archive); write it with numpy.savez or savez_compressed")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise PrivfedError(f"{path}: refused: it holds pickled object arrays; store images, labels and names as plain arrays") from None
        raise PrivfedError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise PrivfedError(f"{path}: not a readable .npz file ({exc}); write it with numpy.savez or savez_compressed") from None


def _images(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 3 or (array.ndim == 4 and array.shape[-1] == 3)):
        raise PrivfedError(f"{where}: images have shape {array.shape}; expected N x H x W (grey) or N x H x W x 3 (colour)")
    return as_uint8(array, where)


def _labels(array: np.ndarray, n: int, where: str) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise PrivfedError(f"{where}: labels have shape {array.shape}; privfed needs one class per image (N or N x 1), not multi-label")
    if len(array) != n:
        raise PrivfedError(f"{where}: {len(array)} labels for {n} images; both must have one row per image")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.mod(array, 1) == 0):
            raise PrivfedError(f"{where}: labels must be whole numbers (class indices), found dtype {array.dtype}")
    labels = array.astype(np.int64)
    if n and labels.min() < 0:
        raise PrivfedError(f"{where}: labels must be class indices 0, 1, ...; found {labels.min()}")
    return labels


def _strings(array: np.ndarray, key: str, where: str) -> list[str]:
    if array.dtype.kind not in ("U", "S") or array.ndim != 1:
        raise PrivfedError(f"{where}: '{key}' must be a 1-D array of strings")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in array.tolist()]


class NpzDataset(ImageDataset):
    """Images held in memory from an ``.npz``; ``split`` picks one MedMNIST split or ``"all"``."""

    def __init__(
        self,
        path: str | Path,
        image_size: int,
        split: str = "all",
        source: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.path = Path(path).expanduser()
        where = str(self.path)
        if split not in SPLIT_CHOICES:
            raise PrivfedError(f"{where}: unknown split {split!r}; choose one of: {', '.join(SPLIT_CHOICES)}")
        arrays = _read(self.path)
        if "images" in arrays or "labels" in arrays:
            if split != "all":
                raise PrivfedError(f"{where}: has no MedMNIST splits (it stores 'images'/'labels'); use split='all'")
            parts = [self._plain(arrays, where)]
        else:
            present = [s for s in MEDMNIST_SPLITS if f"{s}_images" in arrays]
            if not present:
                raise PrivfedError(
                    f"{where}: no image arrays found (keys: {', '.join(sorted(arrays)) or 'none'}); "
                    "expected MedMNIST 'train_images' + 'train_labels' (and optionally val_*, test_*) or 'images' + 'labels'"
                )
            wanted = present if split == "all" else [split]
            parts = [self._medmnist(arrays, s, where) for s in wanted]
        self._arrays = [images for images, _, _ in parts]
        self._where = np.concatenate([np.stack([np.full(len(ids), k), np.arange(len(ids))], 1) for k, (_, _, ids) in enumerate(parts)])
        labels = np.concatenate([labels for _, labels, _ in parts])
        ids = [i for _, _, part_ids in parts for i in part_ids]
        num_classes = int(labels.max()) + 1 if len(labels) else 0
        if "classes" in arrays:
            classes = _strings(arrays["classes"], "classes", where)
            if len(classes) < num_classes:
                raise PrivfedError(f"{where}: labels go up to {num_classes - 1} but 'classes' names only {len(classes)} classes")
        else:
            classes = [f"class_{k}" for k in range(num_classes)]
        if len(classes) < 2:
            raise PrivfedError(f"{where}: needs at least 2 classes, found {len(classes)}; a classifier needs images of both kinds")
        self.credits = str(arrays["credits"]) if "credits" in arrays else ""
        super().__init__(source or where, image_size, ids, labels, classes, cache_bytes=cache_bytes)

    @staticmethod
    def _plain(arrays: dict[str, np.ndarray], where: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        missing = [k for k in ("images", "labels") if k not in arrays]
        if missing:
            raise PrivfedError(f"{where}: missing array(s) {', '.join(missing)}; a plain .npz needs 'images' and 'labels'")
        images = _images(arrays["images"], f"{where}: 'images'")
        labels = _labels(arrays["labels"], len(images), f"{where}: 'labels'")
        if "ids" in arrays:
            ids = _strings(arrays["ids"], "ids", where)
            if len(ids) != len(images):
                raise PrivfedError(f"{where}: {len(ids)} ids for {len(images)} images; store one id per image")
        else:
            ids = [f"{i:06d}" for i in range(len(images))]
        return images, labels, ids

    @staticmethod
    def _medmnist(arrays: dict[str, np.ndarray], split: str, where: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if f"{split}_images" not in arrays:
            raise PrivfedError(f"{where}: has no '{split}_images'; choose a split it holds or 'all'")
        if f"{split}_labels" not in arrays:
            raise PrivfedError(f"{where}: has '{split}_images' but no '{split}_labels'; store one label per image")
        images = _images(arrays[f"{split}_images"], f"{where}: '{split}_images'")
        labels = _labels(arrays[f"{split}_labels"], len(images), f"{where}: '{split}_labels'")
        width = max(6, len(str(len(images) - 1)))
        return images, labels, [f"{split}/{i:0{width}d}" for i in range(len(images))]

    def native_sizes(self) -> Counter:
        sizes: Counter = Counter()
        for k, images in enumerate(self._arrays):
            sizes[(images.shape[2], images.shape[1])] += int(np.sum(self._where[:, 0] == k))
        return sizes

    def _decode(self, index: int) -> np.ndarray:
        part, row = self._where[index]
        return resize_array(self._arrays[part][row], self.image_size)
