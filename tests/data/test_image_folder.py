import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from privfed.data import ImageFolderDataset, SkippedImagesWarning, open_dataset
from privfed.errors import PrivfedError


def test_classes_ids_and_labels(folder):
    ds = ImageFolderDataset(folder, 16)
    assert ds.classes == ["normal", "tumor"]
    assert ds.ids == ["normal/a.png", "normal/b.png", "normal/c.jpg", "tumor/sub/y.png", "tumor/x.png"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1]
    assert ds.class_counts() == {"normal": 3, "tumor": 2}
    assert ds.native_sizes() == {(40, 40): 4, (50, 30): 1}
    assert ds.skipped == []


def test_pixels_grey_rgb_and_resize(folder):
    ds = ImageFolderDataset(folder, 16)
    images, labels = ds.load(["tumor/x.png", "normal/b.png", "normal/a.png", "normal/c.jpg"])
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert labels.tolist() == [1, 0, 0, 0]
    assert torch.all(images[0] == 250 / 255)  # grey -> three equal channels, resize keeps a flat image flat
    assert torch.all(images[1, 0] == 200 / 255) and torch.all(images[1, 1:] == 0)  # colour kept, 50x30 -> 16x16
    assert torch.all(images[2] == 10 / 255)
    assert (images[3] - 128 / 255).abs().max() <= 2 / 255  # JPEG is lossy
    image, label, sample_id = ds[3]
    assert sample_id == "tumor/sub/y.png" and label == 1 and torch.all(image == 60 / 255)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path, make_image):
    make_image(tmp_path / "a" / "deep.png", 65535 // 2, mode="I;16")
    make_image(tmp_path / "b" / "x.png", 1)
    images, _ = ImageFolderDataset(tmp_path, 8).load(["a/deep.png"])
    assert abs(images.mean().item() - 127.5 / 255) <= 1 / 255


def test_decoded_once_then_cached(folder, monkeypatch):
    ds = ImageFolderDataset(folder, 8)
    calls = []
    decode = ds._decode
    monkeypatch.setattr(ds, "_decode", lambda i: calls.append(i) or decode(i))
    first, _ = ds.load(ds.ids)
    second, _ = ds.load(list(reversed(ds.ids)))
    assert sorted(calls) == list(range(len(ds)))
    assert torch.equal(first, second.flip(0))


def test_corrupt_and_truncated_files_are_skipped_with_one_counted_warning(folder):
    (folder / "tumor" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buffer, "JPEG")
    (folder / "normal" / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(folder, 8)
    skipped = [w for w in caught if issubclass(w.category, SkippedImagesWarning)]
    assert len(skipped) == 1 and "skipped 2 file(s)" in str(skipped[0].message)
    assert sorted(ds.skipped) == ["normal/cut.jpg", "tumor/garbage.png"]
    assert len(ds) == 5


def test_unknown_id_names_the_source(folder):
    with pytest.raises(PrivfedError, match="'normal/zzz.png' is not in .*privfed data split"):
        ImageFolderDataset(folder, 8).load(["normal/zzz.png"])


@pytest.mark.parametrize(
    "layout, message",
    [
        ({}, "needs at least 2 class subfolders.*found none"),
        ({"only/a.png": True}, "found only 'only'"),
        ({"a/x.txt": False, "b/y.bin": False}, "no readable images"),
        ({"a/x.png": True, "b/y.bin": False}, "class folder\\(s\\) b hold no readable images"),
    ],
)
def test_bad_folders(tmp_path, make_image, layout, message):
    for name, is_image in layout.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        make_image(path, 5) if is_image else path.write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImagesWarning)
        with pytest.raises(PrivfedError, match=message):
            open_dataset(tmp_path, 8)


def test_missing_folder_and_bad_size(tmp_path, folder):
    with pytest.raises(PrivfedError, match="no such file or folder"):
        open_dataset(tmp_path / "nope", 8)
    with pytest.raises(PrivfedError, match="--image-size 0"):
        open_dataset(folder, 0)


@pytest.mark.realdata
def test_real_brain_mri_counts(brain_mri):
    ds = ImageFolderDataset(brain_mri, 32)
    assert ds.class_counts() == {"normal": 674, "tumor": 4864}
    assert ds.skipped == []
    images, labels = ds.load(ds.ids[:3] + ds.ids[-3:])
    assert images.shape == (6, 3, 32, 32) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.05
