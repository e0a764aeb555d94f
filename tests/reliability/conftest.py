"""Helpers for the reliability tests: a tiny run on the embedded data, the CLI in a subprocess,
and the integrity check every run directory must pass after any kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from privfed.federated import TrainConfig
from privfed.io import load_tensors, read_jsonl
from tests.synthetic import SyntheticDataset, TinySplit  # noqa: F401  (re-exported to the tests)

torch.set_num_threads(1)

PRIVFED = [sys.executable, "-m", "privfed"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}

#: 2 clients x 96 images at 32x32, 4 rounds, every round observed: a run of a few seconds whose
#: rounds last long enough (~0.1 s) for a poll to kill the process inside one.
TINY_TOML = """\
algorithm = "fedavg"
num_clients = 2
rounds = 4
image_size = 32
shared_width = 16
batch_size = 16
lr = 0.05
observe = "all"
device = "cpu"
eval_batch_size = 128
[plan]
kind = "sizes"
client_size = 96
server_size = 8
test_size = 64
"""

TIMING_FIELDS = {"wall_seconds", "seconds"}


def privfed(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``privfed ARGS`` in a fresh interpreter, as a user would run it."""
    return subprocess.run([*PRIVFED, *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([*PRIVFED, *args], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(process: subprocess.Popen, condition: Callable[[], bool], extra_delay: float = 0.0, timeout: float = 120) -> bool:
    """SIGKILL ``process`` once ``condition()`` holds (polled every 2 ms), after ``extra_delay`` s.

    Returns False when the process ended by itself first (nothing was killed).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("condition never held")
        time.sleep(0.002)
    if extra_delay:
        time.sleep(extra_delay)
    finished = process.poll() is not None
    process.kill()  # SIGKILL on POSIX: no handler, no cleanup, like a crash or an OOM kill
    process.wait(timeout=30)
    return not finished


def metrics_lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def assert_intact(run: Path) -> None:
    """Every JSON parses, every metrics line parses, every safetensors loads (temp files aside)."""
    if not run.exists():
        return
    for path in run.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            assert isinstance(json.loads(line), dict)
    for path in run.rglob("*.safetensors"):
        load_tensors(path)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def summary_without_timing(run: Path) -> dict:
    data = json.loads((run / "summary.json").read_text())
    return {k: v for k, v in data.items() if k not in TIMING_FIELDS}


def rows_without_timing(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in read_jsonl(run / "metrics.jsonl")]


@pytest.fixture
def tiny_toml(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


# ---- in-process runs on synthetic data (no subprocess, no embedded data) --------------------
def tiny_split(dataset: SyntheticDataset, num_clients: int = 2, size: int = 10, server: int = 8, test: int = 12) -> TinySplit:
    ids = list(dataset.ids)
    clients = [ids[k * size : (k + 1) * size] for k in range(num_clients)]
    rest = ids[num_clients * size :]
    return TinySplit(clients, rest[:server], rest[server : server + test])


def tiny_config(**changes) -> TrainConfig:
    base = dict(algorithm="fedavg", num_clients=2, archs=["simple"], shared_width=16, rounds=3, batch_size=8, lr=0.05,
                image_size=32, data="synthetic", plan={"kind": "fractions"}, device="cpu", observe="all")
    return TrainConfig(**{**base, **changes})


# ---- the CLI in process (no interpreter start-up) and small real runs ----------------------
def cli(capsys, *args: str) -> tuple[int, str]:
    """``privfed ARGS`` through the console entry point in this process: (exit code, stderr)."""
    from privfed.cli.main import run

    capsys.readouterr()
    try:
        run(list(args))
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    return code, capsys.readouterr().err


@pytest.fixture(scope="session")
def make_run(tmp_path_factory):
    """make_run(algorithm, rounds, stop_after_round, **changes): a small run on the embedded data, made once
    per session (copy it before changing it); ``stop_after_round`` leaves it unfinished, as a crash would."""
    import tomllib

    from privfed.federated import run_training

    made: dict = {}

    def factory(algorithm: str = "fedavg", rounds: int = 2, stop_after_round: int | None = None, **changes) -> Path:
        key = (algorithm, rounds, stop_after_round, tuple(sorted(changes.items())))
        if key not in made:
            values = {**tomllib.loads(TINY_TOML), "algorithm": algorithm, "rounds": rounds, **changes}
            values["plan"] = {**values["plan"], "client_size": 24, "test_size": 24}
            out = tmp_path_factory.mktemp(f"run-{algorithm}") / "run"
            run_training(TrainConfig.from_dict(values), out, progress=False, command="privfed train (test)",
                         stop_after_round=stop_after_round)
            made[key] = out
        return made[key]

    return factory
