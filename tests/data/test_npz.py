import numpy as np
import pytest
import torch

from privfed.data import NpzDataset, open_dataset
from privfed.errors import PrivfedError


def test_medmnist_splits_are_merged_with_prefixed_ids(tmp_path, make_medmnist):
    ds = open_dataset(make_medmnist(tmp_path / "m.npz"), 28)
    assert isinstance(ds, NpzDataset)
    assert len(ds) == 11
    assert ds.ids[:2] == ["train/000000", "train/000001"] and ds.ids[6] == "val/000000" and ds.ids[-1] == "test/000002"
    assert ds.classes == ["class_0", "class_1"]
    assert ds.labels.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]  # (N, 1) labels flattened
    assert ds.native_sizes() == {(28, 28): 11}
    images, labels = ds.load(["test/000002", "train/000003", "val/000001"])
    assert images.shape == (3, 3, 28, 28)
    assert torch.equal(images[:, 0, 0, 0] * 255, torch.tensor([22.0, 3.0, 11.0]))  # value = 10*split + i
    assert labels.tolist() == [0, 1, 1]


def test_one_split_and_resize(tmp_path, make_medmnist):
    ds = NpzDataset(make_medmnist(tmp_path / "m.npz", sizes=(4, None, 3)), 32, split="test")
    assert ds.ids == ["test/000000", "test/000001", "test/000002"]
    image, label, sample_id = ds[2]
    assert image.shape == (3, 32, 32) and torch.all(image == 22 / 255) and label == 0  # a flat image stays flat
    with pytest.raises(PrivfedError, match="has no 'val_images'"):
        NpzDataset(tmp_path / "m.npz", 32, split="val")


def test_colour_images_and_class_names(tmp_path, make_medmnist):
    path = make_medmnist(tmp_path / "c.npz", colour=True, classes=np.array(["benign", "malignant"]))
    ds = NpzDataset(path, 14)
    assert ds.classes == ["benign", "malignant"]
    images, _ = ds.load(["train/000004"])
    assert torch.allclose(images[0, :, 3, 3] * 255, torch.tensor([4.0, 2.0, 0.0]))


def test_plain_layout_with_ids_and_float_images(tmp_path):
    images = np.zeros((3, 8, 8), dtype=np.float32)
    images[1] = 1.0
    np.savez(tmp_path / "p.npz", images=images, labels=np.array([0, 1, 1]), ids=np.array(["x", "y", "z"]))
    ds = NpzDataset(tmp_path / "p.npz", 8)
    loaded, labels = ds.load(["y", "x"])
    assert torch.all(loaded[0] == 1.0) and torch.all(loaded[1] == 0.0) and labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"pictures": np.zeros((2, 4, 4))}, "no image arrays found \\(keys: pictures\\)"),
        ({"train_images": np.zeros((2, 4, 4), np.uint8)}, "no 'train_labels'"),
        ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros((2, 14))}, "not multi-label"),
        ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros(3, int)}, "3 labels for 2 images"),
        ({"train_images": np.zeros((2, 4), np.uint8), "train_labels": np.zeros(2, int)}, "expected N x H x W"),
        ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros(2, int)}, "at least 2 classes"),
        ({"images": np.zeros((2, 4, 4), np.uint8)}, "missing array\\(s\\) labels"),
    ],
)
def test_bad_npz_files(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(PrivfedError, match=message):
        open_dataset(tmp_path / "bad.npz", 8)


def test_pickled_objects_are_refused_and_non_npz_files_rejected(tmp_path):
    np.savez(tmp_path / "obj.npz", images=np.array([object()] * 2, dtype=object), labels=np.array([0, 1]))
    with pytest.raises(PrivfedError, match="refused: it holds pickled object arrays"):
        open_dataset(tmp_path / "obj.npz", 8)
    (tmp_path / "fake.npz").write_text("hello")
    with pytest.raises(PrivfedError, match="not a readable .npz file"):
        open_dataset(tmp_path / "fake.npz", 8)
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(PrivfedError, match="not a folder or an .npz file"):
        open_dataset(tmp_path / "data.csv", 8)
