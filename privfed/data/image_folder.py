"""A folder with one subfolder per class (``normal/``, ``tumor/``), like torchvision's ImageFolder.

Every file is checked when the folder is indexed, so a damaged file is found before training
starts rather than in round 7: the header is read and ``verify()``-ed (cheap: about 0.4 s for
the 5,538 brain-MRI JPEGs), and a JPEG that does not end with its end-of-image marker (the
usual sign of a truncated download) is fully decoded to decide. Files that fail are left out
with one warning that counts them. Pixels are decoded only when first loaded, at the requested
side, and cached as small uint8 arrays; JPEGs use Pillow's ``draft`` to decode at a reduced
DCT scale, which makes 224 px -> 64 px about twice as fast.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from privfed.data.base import DEFAULT_CACHE_BYTES, ImageDataset, SkippedImagesWarning, progress
from privfed.data.pixels import apply_exif_orientation, resize_image
from privfed.errors import PrivfedError

#: Files that are never images (listings, notes); they are ignored without a warning.
NOT_IMAGES = frozenset({".txt", ".csv", ".md", ".json", ".jsonl", ".yaml", ".yml", ".html", ".pdf", ".py", ".db", ".ini"})

_JPEG_END = b"\xff\xd9"


def _probe(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` when Pillow can read the file, else None."""
    try:
        with Image.open(path) as image:
            size, fmt = image.size, image.format
            image.verify()
        if fmt == "JPEG" and not _ends_with_jpeg_marker(path):
            with Image.open(path) as image:
                image.load()  # raises "image file is truncated" for a cut-off file
        return size
    except Exception:  # Pillow raises many types (OSError, SyntaxError, ValueError, struct.error ...)
        return None


def _ends_with_jpeg_marker(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 64))
        tail = handle.read().rstrip(b"\x00\r\n\t ")
    return tail.endswith(_JPEG_END)


def _is_candidate(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() not in NOT_IMAGES


class ImageFolderDataset(ImageDataset):
    """``root/<class>/<...>/<file>``: classes sorted by folder name, ids = ``<class>/<...>/<file>``."""

    def __init__(self, root: str | Path, image_size: int, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise PrivfedError(f"{self.root}: folder not found; pass a folder with one subfolder per class, an .npz file, or 'embedded'")
        class_dirs = sorted(d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(class_dirs) < 2:
            found = f"only {class_dirs[0].name!r}" if class_dirs else "none"
            raise PrivfedError(
                f"{self.root}: needs at least 2 class subfolders (e.g. normal/ and tumor/), found {found}; "
                "put each class's images in its own subfolder"
            )
        candidates = [
            (label, path)
            for label, folder in enumerate(class_dirs)
            for path in sorted(p for p in folder.rglob("*") if _is_candidate(p))
        ]
        ids, labels, sizes, skipped = [], [], Counter(), []
        for label, path in progress(candidates, len(candidates), f"checking {len(candidates)} images"):
            sample_id = path.relative_to(self.root).as_posix()
            size = _probe(path)
            if size is None:
                skipped.append(sample_id)
                continue
            ids.append(sample_id)
            labels.append(label)
            sizes[size] += 1
        if not ids:
            raise PrivfedError(f"{self.root}: no readable images in its class subfolders; add images Pillow can read (PNG, JPEG, ...)")
        counts = np.bincount(np.asarray(labels), minlength=len(class_dirs))
        empty = [d.name for d, n in zip(class_dirs, counts) if n == 0]
        if empty:
            raise PrivfedError(
                f"{self.root}: class folder(s) {', '.join(empty)} hold no readable images; add images or remove the folder"
            )
        if skipped:
            examples = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
            warnings.warn(
                f"{self.root}: skipped {len(skipped)} file(s) that could not be read as images ({examples})",
                SkippedImagesWarning,
                stacklevel=2,
            )
        self._sizes = sizes
        super().__init__(str(self.root), image_size, ids, np.asarray(labels), [d.name for d in class_dirs], skipped, cache_bytes)

    def native_sizes(self) -> Counter:
        return Counter(self._sizes)

    def _decode(self, index: int) -> np.ndarray:
        path = self.root / self.ids[index]
        size = self.image_size
        try:
            with Image.open(path) as image:
                if image.format == "JPEG":
                    image.draft(image.mode, (size, size))
                return resize_image(apply_exif_orientation(image), size)
        except Exception as exc:  # the file changed or is damaged in a way the index check missed
            raise PrivfedError(
                f"{path}: cannot decode this image ({exc}); remove or replace the file, then make a new split with 'privfed data split'"
            ) from None
