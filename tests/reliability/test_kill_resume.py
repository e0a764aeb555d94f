"""SIGKILL `privfed train` at several moments; the run directory stays readable and --resume
ends with exactly the metrics of an uninterrupted run.

Kill points: during start-up (before config.json exists), as soon as config.json exists
(before round 1 is checkpointed), right after round 1's metrics line, and at random moments
later (which may fall in the middle of a checkpoint). In-process tests then crash the
checkpoint at its two delicate points (between the tensor writes, and between state.json
and the final moves), which a timed kill hits only by luck.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from privfed.errors import PrivfedError
from privfed.federated import run_training
from privfed.federated import engine as engine_module
from privfed.io import read_json, save_tensors, write_json

from .conftest import (
    SyntheticDataset, assert_intact, cli, kill_when, metrics_lines, one_error_line, privfed, rows_without_timing, start,
    summary_without_timing, tiny_config, tiny_split,
)


def test_sigkill_at_several_moments_then_resume_matches_uninterrupted_run(tmp_path, tiny_toml, capsys):
    reference = tmp_path / "reference"
    uninterrupted = start("train", "--config", str(tiny_toml), "--out", str(reference), "--quiet", cwd=tmp_path)
    run = tmp_path / "run"
    train = ("train", "--config", str(tiny_toml), "--out", str(run), "--quiet")
    resume = ("train", "--resume", str(run), "--quiet")
    rng = random.Random(0)
    killed = []

    # 1. during start-up (imports take seconds): nothing written yet; --resume says to start again
    assert kill_when(start(*train, cwd=tmp_path), lambda: True, extra_delay=rng.uniform(0.05, 0.5))
    assert not (run / "config.json").exists()
    code, err = cli(capsys, *resume)
    assert code == 2 and "start it again" in one_error_line(err)

    # 2. soon after config.json exists (init files or round 1 being written): --resume restarts at round 1
    killed.append(kill_when(start(*train, cwd=tmp_path), lambda: (run / "config.json").exists(),
                            extra_delay=rng.uniform(0, 0.3)))
    assert_intact(run)
    # 3. right after round 1's metrics line
    killed.append(kill_when(start(*resume, cwd=tmp_path), lambda: metrics_lines(run) >= 1))
    assert_intact(run)
    # 4. at a random moment after round 2's line (round 3, its checkpoint, or later)
    killed.append(kill_when(start(*resume, cwd=tmp_path), lambda: metrics_lines(run) >= 2, extra_delay=rng.uniform(0, 0.3)))
    assert_intact(run)
    assert killed[:2] == [True, True], "the first kills must land before the run ended"
    assert (run / "checkpoints" / "state.json").exists()

    if not (run / "summary.json").exists():
        done = privfed(*resume, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()
    assert_intact(run)
    assert summary_without_timing(run) == summary_without_timing(reference)
    assert rows_without_timing(run) == rows_without_timing(reference)
    assert not list(run.rglob(".*.tmp")), "resume removes the temporary files a kill left behind"


# ---- crashes inside the checkpoint, in process (synthetic data, ~1 s each) ------------------
class Crash(BaseException):
    """Stands for SIGKILL: nothing catches it, no cleanup runs."""


@pytest.fixture
def reference(tmp_path):
    dataset = SyntheticDataset(n=50)
    split = tiny_split(dataset)
    config = tiny_config()
    run_training(config, tmp_path / "reference", progress=False, dataset=dataset, split=split)
    return config, dataset, split, tmp_path / "reference"


@pytest.mark.parametrize("moment", ["between tensor writes", "after state.json"])
def test_crash_inside_checkpoint_resumes_to_the_same_result(tmp_path, monkeypatch, reference, moment):
    config, dataset, split, ref = reference
    calls = {"save": 0, "replace": 0}
    real_save, real_replace = engine_module.RunDir.save, engine_module.os.replace

    def save(self, path, tensors, metadata=None):
        if moment == "between tensor writes" and metadata == {"round": "2"}:
            calls["save"] += 1
            if calls["save"] == 2:  # client_0 of round 2 is pending, client_1 and global are not
                raise Crash
        real_save(self, path, tensors, metadata)

    def replace(src, dst):  # os.replace is shared with privfed.io: only the checkpoint moves count
        pending = "pending" in Path(src).parts and "pending" not in Path(dst).parts
        if pending and moment == "after state.json" and read_json(Path(dst).parent / "state.json")["round"] == 2:
            calls["replace"] += 1
            if calls["replace"] == 2:  # round 2 committed, one party moved into place, two still pending
                raise Crash
        real_replace(src, dst)

    monkeypatch.setattr(engine_module.RunDir, "save", save)
    monkeypatch.setattr(engine_module.os, "replace", replace)
    with pytest.raises(Crash):
        run_training(config, tmp_path / "run", progress=False, dataset=dataset, split=split)
    monkeypatch.undo()
    run = tmp_path / "run"
    assert_intact(run)
    state = read_json(run / "checkpoints" / "state.json")
    assert state["round"] == (1 if moment == "between tensor writes" else 2)
    run_training(None, run, resume=True, progress=False, dataset=dataset, split=split)
    assert summary_without_timing(run) == summary_without_timing(ref)
    assert rows_without_timing(run) == rows_without_timing(ref)
    assert not list((run / "checkpoints" / "pending").glob("*"))


def test_altered_checkpoint_is_refused_not_loaded(tmp_path, reference):
    config, dataset, split, _ = reference
    run = tmp_path / "run"
    run_training(config, run, progress=False, dataset=dataset, split=split, stop_after_round=2)
    # a checkpoint from another round (tagged 1) under the round-2 state
    other = tmp_path / "other"
    run_training(config, other, progress=False, dataset=dataset, split=split, stop_after_round=1)
    (run / "checkpoints" / "client_1.safetensors").write_bytes((other / "checkpoints" / "client_1.safetensors").read_bytes())
    with pytest.raises(PrivfedError, match="holds round 1 but checkpoints/state.json says round 2"):
        run_training(None, run, resume=True, progress=False, dataset=dataset, split=split)
    # a checkpoint of another shape
    save_tensors(run / "checkpoints" / "client_1.safetensors", {"shared.weight": torch.zeros(3, 3)}, {"round": "2"})
    with pytest.raises(PrivfedError, match="does not fit the run's model"):
        run_training(None, run, resume=True, progress=False, dataset=dataset, split=split)


def test_resume_of_a_run_from_another_format_version_is_refused(tmp_path, reference):
    config, dataset, split, _ = reference
    run = tmp_path / "run"
    run_training(config, run, progress=False, dataset=dataset, split=split, stop_after_round=1)
    stored = read_json(run / "config.json")
    write_json(run / "config.json", {**stored, "format_version": 99, "privfed_version": "9.0"})
    with pytest.raises(PrivfedError, match=r"run format version 99 .*\(privfed 9\.0\)"):
        run_training(None, run, resume=True, progress=False, dataset=dataset, split=split)
