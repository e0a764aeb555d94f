"""The Flower ServerApp/ClientApp code path, message by message, in one process (LoopbackGrid).

Same messages, serialisation and per-node state as a deployment; no processes, so these
pin the properties exactly: a Flower run equals the in-process engine, partial sends only
the shared layer, a lost client is survived or reported, and attacks read the result.
"""

import pytest

pytest.importorskip("flwr", reason="Flower (flwr) is not installed: pip install 'privfed[flower]'")
import torch

from privfed.errors import PrivfedError
from privfed.federated.engine import run_training
from privfed.flower.client_app import app as client_app
from privfed.flower.loopback import LoopbackGrid
from privfed.flower.options import config_from_run_config
from privfed.flower.server_app import run_server
from privfed.io import load_tensors, read_json, read_jsonl



def _nodes(n):
    return [{"partition-id": k, "num-partitions": n, "device": "cpu"} for k in range(n)]


def _flower_and_engine(tiny_run_config, tmp_path, algorithm, **extra):
    config, options = config_from_run_config(tiny_run_config(tmp_path / "flower", algorithm, **extra))
    grid = LoopbackGrid(client_app, _nodes(config.num_clients))
    run_server(grid, config, options)
    run_training(config, tmp_path / "engine", progress=False)
    return grid, read_jsonl(tmp_path / "flower" / "metrics.jsonl"), read_jsonl(tmp_path / "engine" / "metrics.jsonl")


@pytest.mark.parametrize("algorithm", ["fedavg", "fednova"])
def test_full_model_flower_run_equals_engine(tiny_run_config, tmp_path, algorithm):
    torch.set_num_threads(1)
    grid, flower, engine = _flower_and_engine(tiny_run_config, tmp_path, algorithm)
    assert [r["round"] for r in flower] == [1, 2]
    for a, b in zip(flower, engine):
        assert a["global_test_auc"] == pytest.approx(b["global_test_auc"], abs=1e-6)
        for ca, cb in zip(a["clients"], b["clients"]):
            assert ca["train_loss"] == pytest.approx(cb["train_loss"], rel=1e-5)
            assert ca["bytes_up"] == cb["bytes_up"]
    final_f = load_tensors(tmp_path / "flower" / "models" / "global.safetensors")
    final_e = load_tensors(tmp_path / "engine" / "models" / "global.safetensors")
    assert all(torch.allclose(final_f[k].float(), final_e[k].float(), atol=1e-5) for k in final_e)
    # split.json: the ids each client reported are the engine's split of the same data
    assert read_json(tmp_path / "flower" / "split.json")["clients"] == read_json(tmp_path / "engine" / "split.json")["clients"]


def test_partial_sends_only_shared_layer_and_equals_engine(tiny_run_config, tmp_path):
    torch.set_num_threads(1)
    grid, flower, engine = _flower_and_engine(tiny_run_config, tmp_path, "partial", **{"shared-width": "8,4", "common-width": 8})
    for a, b in zip(flower, engine):
        assert a["server_test_auc"] == pytest.approx(b["server_test_auc"], abs=1e-6)
        assert [c["train_loss"] for c in a["clients"]] == pytest.approx([c["train_loss"] for c in b["clients"]], rel=1e-5)
    carrying = [m for m in grid.delivered if "arrays" in m.content.array_records]
    assert len(carrying) == 2 * 2 + 2  # two train rounds to two clients, then the final send-back
    for message in carrying:  # every tensor the server sent: the shared layer only
        assert set(message.content.array_records["arrays"].keys()) == {"shared.weight", "shared.bias"}
    received = load_tensors(tmp_path / "flower" / "observed" / "round_2" / "client_1.safetensors")
    assert set(received) == {"shared.weight", "shared.bias"} and received["shared.weight"].shape == (4, 4)
    server_f = load_tensors(tmp_path / "flower" / "models" / "server.safetensors")
    server_e = load_tensors(tmp_path / "engine" / "models" / "server.safetensors")
    assert all(torch.allclose(server_f[k].float(), server_e[k].float(), atol=1e-5) for k in server_e)


def test_attacks_read_a_flower_run(tiny_run_config, tmp_path):
    from attacks.run_access import open_run

    config, options = config_from_run_config(tiny_run_config(tmp_path / "run", "fedavg"))
    run_server(LoopbackGrid(client_app, _nodes(2)), config, options)
    view = open_run(tmp_path / "run")
    assert view.observed_rounds() == [1, 2] and view.round_clients(2) == [0, 1]
    update = view.update(2, 0)
    assert set(update) >= {"shared.weight", "fc.weight"} and float(update["shared.weight"].abs().sum()) > 0
    images, labels = view.images(view.client_ids(0)[:3])
    assert images.shape == (3, 3, 32, 32)
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["final_round"] == 2 and summary["bytes_up_total"] == 2 * 2 * summary["clients"][0]["bytes_up"]


class _DropsNode(LoopbackGrid):
    """Node 102 (client 1) goes offline after round 1."""

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        if any(m.metadata.message_type == "train" for m in messages) and getattr(self, "_train_rounds", 0) >= 1:
            self.offline.add(102)
        if any(m.metadata.message_type == "train" for m in messages):
            self._train_rounds = getattr(self, "_train_rounds", 0) + 1
        return super().send_and_receive(messages, timeout=timeout)


def test_lost_client_round_completes_with_min_clients(tiny_run_config, tmp_path):
    config, options = config_from_run_config(tiny_run_config(tmp_path / "run", "fedavg", num_clients=3, **{"min-clients": 2}))
    run_server(_DropsNode(client_app, _nodes(3)), config, options)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [sorted(c["id"] for c in r["clients"] if c["sampled"]) for r in rows] == [[0, 1, 2], [0, 2]]
    assert rows[1]["missing_clients"] == [1]
    assert read_json(tmp_path / "run" / "observed" / "round_2" / "meta.json")["clients"][1]["client"] == 2


def test_lost_client_below_min_clients_fails_clearly_and_keeps_round_1(tiny_run_config, tmp_path):
    config, options = config_from_run_config(tiny_run_config(tmp_path / "run", "fedavg", num_clients=3))
    with pytest.raises(PrivfedError, match=r"round 2: only 2 of 3 sampled clients replied .*client 1.*min-clients"):
        run_server(_DropsNode(client_app, _nodes(3)), config, options)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["round"] for r in rows] == [1]
    assert (tmp_path / "run" / "observed" / "round_1" / "meta.json").is_file()
    assert not (tmp_path / "run" / "summary.json").exists()


def test_sample_level_dp_accountant_persists_across_rounds(tiny_run_config, tmp_path):
    """Opacus DP-SGD on the node; epsilon grows round over round and equals the engine's."""
    torch.set_num_threads(1)
    _, flower, engine = _flower_and_engine(tiny_run_config, tmp_path, "fedavg", **{
        "dp-level": "sample", "dp-noise-multiplier": 1.0, "dp-max-grad-norm": 1.0})
    eps = [[c["epsilon"] for c in r["clients"]] for r in flower]
    assert 0 < eps[0][0] < eps[1][0]
    assert eps == [[c["epsilon"] for c in r["clients"]] for r in engine]


@pytest.mark.parametrize("algorithm", ["fedavg", "partial"])
def test_eval_every_leaves_the_same_rounds_untested_as_the_engine(tiny_run_config, tmp_path, algorithm):
    torch.set_num_threads(1)
    _, flower, engine = _flower_and_engine(tiny_run_config, tmp_path, algorithm, **{"rounds": 3, "eval-every": 2})
    prefix = "server" if algorithm == "partial" else "global"
    assert [r[f"{prefix}_test_auc"] is None for r in flower] == [True, False, False]
    for a, b in zip(flower, engine):
        assert a[f"{prefix}_test_auc"] == pytest.approx(b[f"{prefix}_test_auc"], abs=1e-6)
    if algorithm == "fedavg":  # partial's clients report test figures only after the last send-back
        assert [[c["test_auc"] is None for c in r["clients"]] for r in flower] == [[True, True], [False, False], [False, False]]
        for a, b in zip(flower, engine):
            assert [c["test_auc"] for c in a["clients"]] == pytest.approx([c["test_auc"] for c in b["clients"]], abs=1e-6)
