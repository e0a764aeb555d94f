"""The threat model is enforced where attacks read a run: knowledge none and init never touch oracle files.

On real run directories (the engine on the embedded images, tiny): every file the attacker
view loads is recorded; the oracle's files (``oracle/``, ``models/client_<k>``) may be read
only for knowledge ``full``. Then those files are deleted, and none/init must still work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import attacks.run_access as run_access
from attacks.run_access import open_run
from privfed.errors import PrivfedError
from privfed.federated import TrainConfig, run_training


def _train(root: Path, algorithm: str) -> Path:
    config = TrainConfig(algorithm=algorithm, data="embedded", image_size=32, shared_width=16, num_clients=2, rounds=2,
                         batch_size=16, plan={"kind": "sizes", "client_size": 16, "server_size": 16, "test_size": 16},
                         observe="first,last", device="cpu")
    run_training(config, root / algorithm, progress=False)
    return root / algorithm


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gating")
    return {algorithm: _train(root, algorithm) for algorithm in ("partial", "fedavg")}


def _oracle(path: Path, run: Path) -> bool:
    relative = path.resolve().relative_to(run.resolve())
    return relative.parts[0] == "oracle" or (relative.parts[0] == "models" and relative.name.startswith("client_"))


def _everything_the_attacker_builds(view, knowledge: str) -> None:
    for r in view.observed_rounds():
        for k in view.round_clients(r):
            view.attacker_model(r, k, knowledge)
    for target in view.supported_targets():
        for name in [f"client_{k}" for k in range(view.num_clients)]:
            view.target_model(target, name, knowledge)


@pytest.mark.parametrize("algorithm", ["partial", "fedavg"])
def test_none_and_init_never_read_oracle_files(runs, algorithm, monkeypatch):
    run = runs[algorithm]
    read: list[Path] = []
    real_load = run_access.load_tensors
    monkeypatch.setattr(run_access, "load_tensors", lambda path, *a, **k: (read.append(Path(path)), real_load(path, *a, **k))[1])
    view = open_run(run)
    for knowledge in ("none", "init"):
        _everything_the_attacker_builds(view, knowledge)
    assert read and not [p for p in read if _oracle(p, run)]
    if algorithm == "partial":  # the recorder sees oracle reads when they happen: full does read them
        _everything_the_attacker_builds(view, "full")
        assert [p for p in read if _oracle(p, run)]


def test_without_the_oracle_files_none_and_init_still_attack_and_full_says_what_is_missing(runs, tmp_path):
    run = tmp_path / "partial"
    shutil.copytree(runs["partial"], run)
    shutil.rmtree(run / "oracle")
    for path in (run / "models").glob("client_*.safetensors"):
        path.unlink()
    view = open_run(run)
    for knowledge in ("none", "init"):
        _everything_the_attacker_builds(view, knowledge)
    with pytest.raises(PrivfedError, match="--knowledge full needs .*oracle.*use --knowledge none,init"):
        view.attacker_model(view.observed_rounds()[0], 0, "full")
    with pytest.raises(PrivfedError, match="--knowledge full needs .*models/client_0"):
        view.target_model("shared-layer", "client_0", "full")
