"""`privfed train` end to end in a subprocess, on the embedded data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from privfed.io import load_tensors, read_json, read_jsonl

PRIVFED = [sys.executable, "-m", "privfed"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def privfed(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*PRIVFED, *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300)


def test_quick_preset_one_round_writes_the_contract(tmp_path):
    out = tmp_path / "run"
    done = privfed("train", "--preset", "quick", "--rounds", "1", "--shared-width", "32", "--quiet", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "client 3" in done.stdout and "global model" in done.stdout
    config = read_json(out / "config.json")
    assert config["command"].startswith("privfed train --preset quick") and config["image_size"] == 64 and config["class_weighting"] == "balanced"
    split = read_json(out / "split.json")
    assert len(split["clients"]) == 4 and split["test"]
    expected = ["config.json", "split.json", "metrics.jsonl", "summary.json", "observed/round_1/meta.json",
                "observed/round_1/global_before.safetensors", "models/global.safetensors", "checkpoints/state.json"]
    for k in range(4):
        expected += [f"init/client_{k}.safetensors", f"observed/round_1/client_{k}.safetensors",
                     f"models/client_{k}.safetensors"]
    for name in expected:
        assert (out / name).is_file(), name
    assert not (out / "oracle").exists()  # FedAvg clients start from global_before: no oracle copy
    sent = load_tensors(out / "observed" / "round_1" / "client_0.safetensors")
    assert "shared.weight" in sent and not any(name.startswith("_module") for name in sent)
    assert sent["shared.weight"].shape == (32, 32)
    assert len(read_jsonl(out / "metrics.jsonl")) == 1
    summary = read_json(out / "summary.json")
    assert summary["final_round"] == 1 and summary["bytes_up_total"] == 4 * sum(t.numel() * 4 for t in sent.values())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rounds", "-1"], "--rounds"),
        (["--algorithm", "fedvag"], "did you mean 'fedavg'"),
        (["--resume", "x", "--rounds", "3"], "drop --rounds"),
        (["--local-epochs", "1,x"], "--local-epochs"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, monkeypatch, capsys, args, message):
    from privfed.cli.main import run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run(["train", "--quiet", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
