import re

import numpy as np
import pytest
import torch

from privfed.data import EMBEDDED_PATH, ImageFolderDataset, open_dataset


def test_embedded_file_is_small_and_credits_its_sources():
    assert EMBEDDED_PATH.stat().st_size <= 5_000_000
    with np.load(EMBEDDED_PATH, allow_pickle=False) as npz:
        credits = str(npz["credits"])
        assert npz["images"].dtype == np.uint8 and npz["images"].shape[1:] == (64, 64)
    for source in ("Nickparvar", "CC0", "Cheng", "CC BY 4.0", "SARTAJ", "Br35H"):
        assert source in credits
    readme = (EMBEDDED_PATH.parent / "README.md").read_text()
    assert "Nickparvar" in readme and "Br35H" in readme


@pytest.mark.parametrize("source", [None, "embedded"])
def test_embedded_is_balanced_brain_mri_with_original_names(source):
    ds = open_dataset(source, 32)
    assert ds.source == "embedded"
    assert ds.classes == ["normal", "tumor"]
    assert ds.class_counts() == {"normal": 674, "tumor": 674}
    assert all(re.fullmatch(r"(normal|tumor)/[\w.-]+\.jpg", i) for i in ds.ids)
    assert all(i.startswith(ds.classes[y]) for i, y in zip(ds.ids, ds.labels))
    images, labels = ds.load(ds.ids[::200])
    assert images.shape == (7, 3, 32, 32)
    assert torch.equal(images[:, 0], images[:, 2])  # greyscale repeated over RGB
    assert images.std() > 0.05


@pytest.mark.realdata
def test_embedded_pixels_match_the_original_files(brain_mri):
    embedded = open_dataset("embedded", 64)
    sample = embedded.ids[::300]
    original = ImageFolderDataset(brain_mri, 64)
    ours, _ = embedded.load(sample)
    theirs, _ = original.load(sample)
    # same files; only the JPEG decode scale differs (draft decoding in the folder reader)
    assert (ours - theirs).abs().mean() < 3 / 255
