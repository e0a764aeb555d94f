"""Atomic, pickle-free files."""

import json
import pickle

import pytest
import torch

from privfed.errors import PrivfedError
from privfed.io import append_jsonl, load_tensors, read_json, read_jsonl, save_tensors, write_json


def test_tensors_round_trip(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    save_tensors(tmp_path / "t.safetensors", tensors)
    loaded = load_tensors(tmp_path / "t.safetensors")
    assert set(loaded) == {"a", "b"} and torch.equal(loaded["a"], tensors["a"]) and torch.equal(loaded["b"], tensors["b"])


class Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_pickle_under_checkpoint_name_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "client_0.safetensors"
    target.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(PrivfedError, match="pickle"):
        load_tensors(target)
    assert not (tmp_path / "PWNED").exists()
    torch.save({"x": torch.zeros(1)}, tmp_path / "zip.safetensors")
    with pytest.raises(PrivfedError, match="never unpickles"):
        load_tensors(tmp_path / "zip.safetensors")


def test_garbage_tensor_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(PrivfedError, match="not a valid safetensors"):
        load_tensors(tmp_path / "x.safetensors")


def test_json_atomic_write_leaves_no_temp_files_and_nan_becomes_null(tmp_path):
    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [1.0, float("inf")]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [1.0, None]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_jsonl_appends_lines(tmp_path):
    for i in range(3):
        append_jsonl(tmp_path / "m.jsonl", {"round": i})
    assert [row["round"] for row in read_jsonl(tmp_path / "m.jsonl")] == [0, 1, 2]


def test_damaged_json_names_the_file(tmp_path):
    (tmp_path / "summary.json").write_text("{truncated")
    with pytest.raises(PrivfedError, match="summary.json: not valid JSON"):
        read_json(tmp_path / "summary.json")
