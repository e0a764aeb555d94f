"""Flower's Simulation Runtime (Ray actors) runs privfed's apps with clients side by side.

One Ray start per module (about 10 s); the run must equal the in-process engine on the
same data, which also proves each virtual SuperNode read partition k of the run's own
data (a node that fell back to the embedded set would train on other images).
"""

import pytest

pytest.importorskip("flwr", reason="Flower (flwr) is not installed: pip install 'privfed[flower]'")
pytest.importorskip("ray", reason="Ray is not installed: pip install 'privfed[simulation]'")
import numpy as np
import torch

from privfed.errors import PrivfedError
from privfed.federated.engine import run_training
from privfed.flower.options import config_from_run_config
from privfed.flower.simulation import ClientResources, simulate
from privfed.io import load_tensors, read_json, read_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flipped_data(tmp_path_factory):
    """150 embedded images mirrored left-right: not the embedded set, so a wrong fallback shows."""
    from privfed.data.embedded import EMBEDDED_PATH

    arrays = dict(np.load(EMBEDDED_PATH, allow_pickle=False))
    keep = np.arange(150)
    path = tmp_path_factory.mktemp("sim-data") / "flipped.npz"
    np.savez(path, images=arrays["images"][keep][:, :, ::-1], labels=arrays["labels"][keep], ids=arrays["ids"][keep],
             classes=arrays["classes"])
    return str(path)


def test_parallel_clients_equal_the_sequential_engine(tiny_run_config, tmp_path, flipped_data, capsys):
    from privfed.cli.main import run

    torch.set_num_threads(1)
    run_config = tiny_run_config(tmp_path / "sim", "partial", **{"shared-width": "8,4", "common-width": 8,
                                                                 "data": flipped_data})
    options = [f"--set={key}={value}" for key, value in run_config.items()
               if key not in ("algorithm", "num-clients", "rounds", "out-dir")]
    with pytest.raises(SystemExit) as exit_info:
        run(["flower", "simulate", "--out", str(tmp_path / "sim"), "--algorithm", "partial", "--num-clients", "2",
             "--rounds", "2", "--client-cpus", "1", "--cpus", "2", *options])
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert read_json(tmp_path / "sim" / "config.json")["command"].startswith("privfed flower simulate")
    config, _ = config_from_run_config(run_config)
    run_training(config, tmp_path / "engine", progress=False)
    assert read_json(tmp_path / "sim" / "split.json")["clients"] == read_json(tmp_path / "engine" / "split.json")["clients"]
    for a, b in zip(read_jsonl(tmp_path / "sim" / "metrics.jsonl"), read_jsonl(tmp_path / "engine" / "metrics.jsonl")):
        assert [c["train_loss"] for c in a["clients"]] == pytest.approx([c["train_loss"] for c in b["clients"]], rel=1e-5)
    server_s = load_tensors(tmp_path / "sim" / "models" / "server.safetensors")
    server_e = load_tensors(tmp_path / "engine" / "models" / "server.safetensors")
    assert all(torch.allclose(server_s[k].float(), server_e[k].float(), atol=1e-5) for k in server_e)
    observed = load_tensors(tmp_path / "sim" / "observed" / "round_2" / "client_1.safetensors")
    assert set(observed) == {"shared.weight", "shared.bias"}


def test_bad_resources_fail_before_ray_starts(tiny_run_config, tmp_path):
    with pytest.raises(PrivfedError, match="--client-cpus"):
        simulate(tiny_run_config(tmp_path / "a"), ClientResources(cpus=0))
    with pytest.raises(PrivfedError, match="device=cpu"):
        simulate(tiny_run_config(tmp_path / "b"), ClientResources(cpus=1, gpus=0.5))
    with pytest.raises(PrivfedError, match="--client-gpus"):
        simulate(tiny_run_config(tmp_path / "c"), ClientResources(cpus=1, gpus=1.5))


def test_parallel_capacity():
    assert ClientResources(cpus=1).parallel_clients(cpus=16, gpus=0) == 16
    assert ClientResources(cpus=2, gpus=0.25).parallel_clients(cpus=16, gpus=1) == 4
    assert ClientResources(cpus=4, gpus=0.25).parallel_clients(cpus=8, gpus=1) == 2
