"""Build privfed's embedded brain-MRI subset (``privfed/data/embedded/brain_mri_64.npz``).

Draws ``--per-class`` images of each class at random (``--seed``) from a class-per-subfolder
folder, converts them to greyscale, resizes them to ``--size`` with Pillow's bilinear
(antialiasing) filter, and writes a compressed ``.npz`` with ``images`` (N x S x S uint8),
``labels``, ``ids`` (the original relative file names, so a split of the subset names the
same files as a split of the full folder), ``classes`` and ``credits``.

    python scripts/build_embedded_dataset.py --source ../shared/data/brain-mri \
        --per-class 674 --size 64 --seed 0 --out privfed/data/embedded/brain_mri_64.npz
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from privfed.data.image_folder import ImageFolderDataset
from privfed.data.pixels import apply_exif_orientation
from privfed.errors import PrivfedError
from privfed.io import atomic_write_bytes

CREDITS = (
    "Brain Tumor MRI Dataset, Msoud Nickparvar (2021), CC0 1.0, "
    "https://www.kaggle.com/datasets/masoudnickparvar/brain-tumor-mri-dataset; it combines the figshare "
    "brain tumor dataset (Jun Cheng et al., 2017, 'Enhanced performance of brain tumor classification via "
    "tumor region augmentation and partition', PLoS ONE 10(10), CC BY 4.0, "
    "https://doi.org/10.6084/m9.figshare.1512427.v5), the SARTAJ dataset (Sartaj Bhuvaji et al., 2020) and "
    "Br35H (Ahmed Hamada, 2020). Cleaned of exact and near-duplicate images; glioma, meningioma and pituitary "
    "tumours pooled as 'tumor'. Subset, greyscale, resized for privfed."
)

MAX_BYTES = 5_000_000


def grey(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        image = apply_exif_orientation(image).convert("L")
        return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def build(source: Path, per_class: int, size: int, seed: int) -> dict[str, np.ndarray]:
    dataset = ImageFolderDataset(source, size)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label, name in enumerate(dataset.classes):
        members = np.flatnonzero(dataset.labels == label)
        if len(members) < per_class:
            raise PrivfedError(f"{source}/{name}: has {len(members)} images, fewer than --per-class {per_class}; lower it")
        chosen.extend(sorted(rng.choice(members, per_class, replace=False).tolist()))
    ids = [dataset.ids[i] for i in chosen]
    images = np.stack([grey(source / sample_id, size) for sample_id in ids])
    return {
        "images": images,
        "labels": dataset.labels[chosen].astype(np.int64),
        "ids": np.array(ids),
        "classes": np.array(dataset.classes),
        "credits": np.array(CREDITS),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with one subfolder per class")
    parser.add_argument("--per-class", type=int, default=674, help="images drawn from each class")
    parser.add_argument("--size", type=int, default=64, help="side of the stored square images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw")
    parser.add_argument("--out", type=Path, default=Path("privfed/data/embedded/brain_mri_64.npz"), help="output .npz")
    args = parser.parse_args(argv)
    try:
        arrays = build(args.source, args.per_class, args.size, args.seed)
    except PrivfedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    if len(data) > MAX_BYTES:
        print(f"error: {len(data)} bytes is over the {MAX_BYTES}-byte budget; lower --per-class", file=sys.stderr)
        return 2
    atomic_write_bytes(args.out, data)
    args.out.chmod(0o644)  # mkstemp creates 0600; the file is shipped in the package
    counts = np.bincount(arrays["labels"])
    print(f"wrote {args.out}: {len(arrays['ids'])} images ({', '.join(f'{c} {n}' for c, n in zip(arrays['classes'], counts))}), {len(data)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
