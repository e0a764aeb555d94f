"""Bad input: one ``error:`` line naming the option or file at fault, exit code 2, no traceback.

The cases go through the console entry point in this process (fast); test_cli_subprocess.py
runs a handful of them as the installed command in fresh interpreters.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from privfed.errors import PrivfedError
from privfed.federated import run_training
from privfed.federated import engine as engine_module
from privfed.io import read_json, read_jsonl, write_json

from .conftest import (
    SyntheticDataset, cli, one_error_line, rows_without_timing, summary_without_timing, tiny_config,
    tiny_split,
)


@pytest.mark.parametrize(
    "toml, expected",
    [
        ("rouns = 3\n", "unknown key 'rouns' (did you mean 'rounds'?)"),
        ("[dp]\nepsilon = 1.0\n", "unknown key 'dp.epsilon' (did you mean 'target_epsilon'?)"),
        ("dp_level = 'sample'\n", "did you mean 'level' in the [dp] table?"),
        ("[plan]\nkind = 'fractions'\nclients_fraction = 1.5\n", "--clients-fraction 1.5: must be a fraction between 0 and 1"),
        ("rounds = '3'\n", "--rounds must be a positive integer, got '3'"),
        ("lr = nan\n", "--lr must be a positive number"),
        ("rounds = 3\nrounds = 4\n", "not valid TOML"),
        ("dp = 5\n", "dp must be a table"),
    ],
)
def test_bad_config_file(tmp_path, capsys, toml, expected):
    (tmp_path / "c.toml").write_text(toml)
    code, err = cli(capsys, "train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"), "--quiet")
    assert code == 2 and expected in one_error_line(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--rounds", "-1"], "--rounds must be a positive integer, got -1"),
        (["--lr", "0"], "--lr must be a positive number, got 0.0"),
        (["--lr", "-0.5"], "--lr must be a positive number"),
        (["--trim-fraction", "1.5"], "--trim-fraction must be in [0, 0.5)"),
        (["--clients-per-round", "9"], "--clients-per-round must be between 1 and --num-clients (4)"),
        (["--dp", "--target-epsilon", "0"], "--target-epsilon must be > 0"),
        (["--dp", "--target-epsilon", "-2"], "--target-epsilon must be > 0"),
        (["--dp", "--noise-multiplier", "inf"], "--noise-multiplier must be a finite number"),
        (["--optimizer", "sdg"], "did you mean 'sgd'"),
        (["--config", "missing.toml"], "--config missing.toml: file not found"),
    ],
)
def test_bad_train_option(tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, "train", "--quiet", "--out", "run", *args)
    assert code == 2 and expected in one_error_line(err)


def test_out_that_cannot_be_written(tmp_path, capsys, tiny_toml):
    (tmp_path / "file").write_text("")
    code, err = cli(capsys, "train", "--config", str(tiny_toml), "--out", str(tmp_path / "file" / "run"), "--quiet")
    assert code == 2 and "file/run: Not a directory; check the path" in one_error_line(err)


def test_resume_of_something_that_is_not_a_run(tmp_path, capsys):
    code, err = cli(capsys, "train", "--resume", str(tmp_path), "--quiet")
    assert code == 2 and "no config.json there" in one_error_line(err)
    (tmp_path / "config.json").write_text("[1, 2]")
    code, err = cli(capsys, "train", "--resume", str(tmp_path), "--quiet")
    assert code == 2 and "not a privfed run configuration" in one_error_line(err)
    (tmp_path / "config.json").write_text("{not json")
    code, err = cli(capsys, "train", "--resume", str(tmp_path), "--quiet")
    assert code == 2 and "not valid JSON" in one_error_line(err)


def test_attack_on_what_the_run_cannot_support(make_run, tmp_path, capsys):
    code, err = cli(capsys, "attack", str(make_run("local", rounds=1)), "--target", "shared-layer")
    assert code == 2 and "--target shared-layer is not possible" in one_error_line(err) and "'local'" in err
    code, err = cli(capsys, "attack", str(make_run("local", rounds=1)))
    assert code == 2 and "nothing to attack" in one_error_line(err)
    code, err = cli(capsys, "attack", str(make_run("partial", rounds=1)), "--target", "full-model")
    assert code == 2 and "this run supports: shared-layer" in one_error_line(err)
    code, err = cli(capsys, "attack", str(make_run("fedavg", rounds=2)), "--target", "gradients")
    assert code == 2 and "unknown --target 'gradients'" in one_error_line(err)


def test_attack_on_a_folder_that_is_not_a_run_or_of_another_version(make_run, tmp_path, capsys):
    code, err = cli(capsys, "attack", str(tmp_path))
    assert code == 2 and "not a privfed run directory" in one_error_line(err)
    code, err = cli(capsys, "attack", str(tmp_path / "nope"))
    assert code == 2 and "not a directory" in one_error_line(err)
    run = tmp_path / "old"
    shutil.copytree(make_run("fedavg", rounds=2), run)
    write_json(run / "config.json", {**read_json(run / "config.json"), "format_version": 0})
    code, err = cli(capsys, "attack", str(run))
    assert code == 2 and "run format version 0 is not supported" in one_error_line(err)
    code, err = cli(capsys, "train", "--resume", str(run), "--quiet")
    assert code == 2 and "run format version 0" in one_error_line(err)


def test_nan_loss_stops_the_round_names_client_and_round_and_keeps_earlier_rounds(tmp_path, monkeypatch):
    """Client 1's weights turn NaN in round 2: the run stops there, round 1 stays resumable."""
    dataset, split, config = SyntheticDataset(), tiny_split(SyntheticDataset()), tiny_config(rounds=3)
    reference = tmp_path / "reference"
    run_training(config, reference, progress=False, dataset=dataset, split=split)
    real = engine_module._Engine._train_client

    def poisoned(self, server_round, k, received):
        if (server_round, k) == (2, 1):  # as if the global model it received had diverged
            received = {**received, "classifier.weight": torch.full_like(received["classifier.weight"], float("nan"))}
        return real(self, server_round, k, received)

    monkeypatch.setattr(engine_module._Engine, "_train_client", poisoned)
    run = tmp_path / "run"
    with pytest.raises(PrivfedError, match=r"^client 1, round 2: training loss became nan at local step 1"):
        run_training(config, run, progress=False, dataset=dataset, split=split)
    assert [row["round"] for row in read_jsonl(run / "metrics.jsonl")] == [1]
    assert read_json(run / "checkpoints" / "state.json")["round"] == 1 and not (run / "summary.json").exists()
    monkeypatch.undo()
    run_training(None, run, resume=True, progress=False, dataset=dataset, split=split)
    assert summary_without_timing(run) == summary_without_timing(reference)
    assert rows_without_timing(run) == rows_without_timing(reference)


def test_weights_that_overflow_on_the_last_step_are_caught(tmp_path):
    """A loss is only seen before each step: a last step to inf must not be sent as an update."""
    from privfed.federated.client import train_local
    from privfed.federated.strategy import LocalSettings
    from privfed.models import build_model

    torch.manual_seed(0)
    model = build_model("simple", 2, 32, 16)
    images, labels = torch.rand(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    with pytest.raises(PrivfedError, match=r"client 3, round 7: weight .* became NaN or infinite after 1 local steps"):
        train_local(model, images, labels, LocalSettings(1, 8, float("inf"), "sgd", 0.0), torch.Generator().manual_seed(0),
                    where="client 3, round 7")
