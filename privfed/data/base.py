"""The one interface every data source offers: ids, labels, classes and ``load(ids)``.

Training, the attacks and the split all speak in *sample ids* (stable strings such as
``tumor/te-glioma-0001.jpg`` or ``train/000123``), never in positions: ``split.json`` stores
ids, and ``open_dataset(config["data"], config["image_size"]).load(ids)`` must return the same
pixels whoever calls it. Sources only say how to decode one sample to a small uint8 array;
this base class caches those arrays and turns them into float tensors in [0, 1].
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from privfed.errors import PrivfedError

#: Decoded arrays kept in memory by default (5,538 brain scans at 224 px grey: ~280 MB).
DEFAULT_CACHE_BYTES = 1 << 30


class SkippedImagesWarning(UserWarning):
    """Some files in an image folder could not be decoded and were left out."""


def check_image_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise PrivfedError(f"--image-size {image_size!r}: must be a positive whole number of pixels, e.g. 64 or 224")
    return int(image_size)


def progress(items: Iterable, total: int, description: str, threshold: int = 1000) -> Iterator:
    """A rich progress bar on stderr for long loops in a terminal; a plain iterator otherwise."""
    if total < threshold or not sys.stderr.isatty():
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, total=total, description=description, console=Console(stderr=True), transient=True)


class ImageDataset(ABC):
    """A labelled pool of images addressed by string ids.

    Attributes: ``source`` (the path, or ``"embedded"``, used in messages and configs),
    ``image_size`` (side of the square tensors returned), ``classes`` (names, index = label),
    ``ids`` (one stable string per sample), ``labels`` (int64 array aligned with ``ids``),
    ``skipped`` (ids of files left out because they could not be decoded).
    """

    def __init__(
        self,
        source: str,
        image_size: int,
        ids: Sequence[str],
        labels: np.ndarray,
        classes: Sequence[str],
        skipped: Sequence[str] = (),
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.source = str(source)
        self.image_size = check_image_size(image_size)
        self.ids: list[str] = list(ids)
        self.labels: np.ndarray = np.asarray(labels, dtype=np.int64)
        self.classes: list[str] = list(classes)
        self.skipped: list[str] = list(skipped)
        if len(self.ids) != len(self.labels):
            raise ValueError("ids and labels must have the same length")
        self._position = {sample_id: i for i, sample_id in enumerate(self.ids)}
        if len(self._position) != len(self.ids):
            duplicates = [k for k, n in Counter(self.ids).items() if n > 1][:3]
            raise PrivfedError(f"{self.source}: sample ids are not unique (e.g. {', '.join(duplicates)}); give every image its own name")
        self._cache: dict[int, np.ndarray] = {}
        self._cache_bytes = 0
        self._cache_limit = int(cache_bytes)

    # ----- what each source provides ---------------------------------------------------
    @abstractmethod
    def _decode(self, index: int) -> np.ndarray:
        """Sample ``index`` as uint8 ``S x S`` (grey) or ``S x S x 3`` with S = image_size."""

    @abstractmethod
    def native_sizes(self) -> Counter:
        """How many samples have each stored ``(width, height)`` before resizing."""

    # ----- the common interface --------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        return self._to_tensor([self._pixels(index)])[0], int(self.labels[index]), self.ids[index]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, image_size={self.image_size}, n={len(self)}, classes={self.classes})"

    def positions(self, ids: Iterable[str]) -> np.ndarray:
        """Positions of ``ids``; an unknown id means the split was made from other data."""
        out = []
        for sample_id in ids:
            try:
                out.append(self._position[sample_id])
            except KeyError:
                raise PrivfedError(
                    f"sample id {sample_id!r} is not in {self.source}; the split was made from other data: "
                    "use the same data source as when the split was made, or make a new split with 'privfed data split'"
                ) from None
        return np.asarray(out, dtype=np.int64)

    def load(self, ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images N x 3 x S x S float32 in [0, 1], labels int64)`` for ``ids``, in that order."""
        where = self.positions(ids)
        missing = [int(i) for i in dict.fromkeys(where.tolist()) if int(i) not in self._cache]
        for i in progress(missing, len(missing), f"decoding {len(missing)} images"):
            self._pixels(i)
        images = self._to_tensor([self._pixels(int(i)) for i in where])
        return images, torch.from_numpy(self.labels[where].copy())

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts)}

    # ----- caching and tensor conversion -----------------------------------------------
    def _pixels(self, index: int) -> np.ndarray:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        array = self._decode(index)
        if self._cache_bytes + array.nbytes <= self._cache_limit:
            self._cache[index] = array
            self._cache_bytes += array.nbytes
        return array

    def _to_tensor(self, arrays: list[np.ndarray]) -> torch.Tensor:
        size = self.image_size
        batch = np.empty((len(arrays), 3, size, size), dtype=np.uint8)
        for row, array in zip(batch, arrays):
            row[...] = array[None, :, :] if array.ndim == 2 else array.transpose(2, 0, 1)
        return torch.from_numpy(batch).to(torch.float32).div_(255.0)
