"""Run directories are shared: a pickle planted under a tensor name is refused, never run.

The payload's only effect would be to create a marker file; each case checks the command
exits 2 with one ``error:`` line naming the file, and that the marker does not exist.
"""

from __future__ import annotations

import io
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest

from .conftest import cli, one_error_line


class Payload:
    """Unpickling this creates ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickles(marker: Path) -> dict[str, bytes]:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:  # the layout torch.save writes
        archive.writestr("archive/data.pkl", pickle.dumps(Payload(marker), protocol=2))
    return {
        "pickle-protocol-4": pickle.dumps(Payload(marker), protocol=4),
        "pickle-protocol-0": pickle.dumps(Payload(marker), protocol=0),  # text: no \x80 magic byte
        "torch-save-zip": zipped.getvalue(),
    }


def test_payloads_work(tmp_path):
    """The payloads are live: unpickling one does create the marker."""
    marker = tmp_path / "marker"
    pickle.loads(pickles(marker)["pickle-protocol-0"])
    assert marker.exists()


@pytest.fixture
def unfinished_run(make_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(make_run("fedavg", rounds=2, stop_after_round=1), run)
    return run


@pytest.mark.parametrize("kind", ["pickle-protocol-4", "pickle-protocol-0", "torch-save-zip"])
@pytest.mark.parametrize("where", ["checkpoints/client_0.safetensors", "checkpoints/pending/global.safetensors"])
def test_train_resume_refuses_a_pickled_checkpoint(unfinished_run, tmp_path, capsys, kind, where):
    marker = tmp_path / "marker"
    target = unfinished_run / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pickles(marker)[kind])
    code, err = cli(capsys, "train", "--resume", str(unfinished_run), "--quiet")
    assert code == 2 and target.name in one_error_line(err) and "safetensors" in err
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle-protocol-4", "pickle-protocol-0", "torch-save-zip"])
def test_attack_refuses_a_pickled_observation_before_any_attack(make_run, tmp_path, capsys, kind):
    run = tmp_path / "run"
    shutil.copytree(make_run("fedavg", rounds=2), run)
    marker = tmp_path / "marker"
    (run / "observed" / "round_2" / "client_1.safetensors").write_bytes(pickles(marker)[kind])
    code, err = cli(capsys, "attack", str(run), "--kind", "membership", "--knowledge", "none", "--device", "cpu")
    assert code == 2 and "round_2/client_1.safetensors" in one_error_line(err)
    assert not marker.exists() and not (run / "attacks").exists()
