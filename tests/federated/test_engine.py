"""The round engine: determinism, resume, baselines, and the run-directory contract."""

from __future__ import annotations

import pytest

from privfed.errors import PrivfedError
from privfed.federated import run_training
from privfed.io import read_json, read_jsonl

from .conftest import make_tiny_split, tiny_config

WALL = {"wall_seconds"}


def strip_times(summary):
    return {k: v for k, v in summary.items() if k not in WALL}


def rows_without_seconds(path):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_jsonl(path / "metrics.jsonl")]


def test_same_seed_same_summary_and_resume_reproduces_it(dataset, tmp_path):
    config = tiny_config(num_clients=3, clients_per_round=2, rounds=3, algorithm="fednova", local_epochs=[1, 2, 1])
    split = make_tiny_split(dataset, 3, sizes=[8, 14, 10])
    first = run_training(config, tmp_path / "a", progress=False, dataset=dataset, split=split)
    second = run_training(config, tmp_path / "b", progress=False, dataset=dataset, split=split)
    assert strip_times(first) == strip_times(second)

    crashed = run_training(config, tmp_path / "c", progress=False, dataset=dataset, split=split, stop_after_round=1)
    assert crashed == {} and not (tmp_path / "c" / "summary.json").exists()
    resumed = run_training(None, tmp_path / "c", resume=True, progress=False, dataset=dataset, split=split)
    assert strip_times(resumed) == strip_times(first)
    assert rows_without_seconds(tmp_path / "c") == rows_without_seconds(tmp_path / "a")
    # sampling: 2 of 3 clients a round, decided by (seed, round)
    for row in read_jsonl(tmp_path / "a" / "metrics.jsonl"):
        assert sum(c["sampled"] for c in row["clients"]) == 2


def test_resume_of_finished_or_missing_run_is_refused(dataset, tmp_path):
    split = make_tiny_split(dataset, 2)
    run_training(tiny_config(rounds=1), tmp_path / "a", progress=False, dataset=dataset, split=split)
    with pytest.raises(PrivfedError, match="already finished"):
        run_training(None, tmp_path / "a", resume=True, progress=False, dataset=dataset, split=split)
    with pytest.raises(PrivfedError, match="already holds a run"):
        run_training(tiny_config(rounds=1), tmp_path / "a", progress=False, dataset=dataset, split=split)
    with pytest.raises(PrivfedError, match="no config.json"):
        run_training(None, tmp_path / "nothing", resume=True, progress=False)


def test_baselines_local_sends_nothing_centralized_has_global_model(dataset, tmp_path):
    split = make_tiny_split(dataset, 2)
    local = run_training(tiny_config(algorithm="local", rounds=1), tmp_path / "l", progress=False, dataset=dataset, split=split)
    assert local["bytes_up_total"] == local["bytes_down_total"] == 0
    assert local["global_test_accuracy"] is None and len(local["clients"]) == 2
    central = run_training(tiny_config(algorithm="centralized", rounds=1), tmp_path / "c", progress=False, dataset=dataset, split=split)
    assert central["clients"] == [] and central["mean_client_test_accuracy"] == central["global_test_accuracy"]
    assert (tmp_path / "c" / "models" / "global.safetensors").is_file()


def test_full_model_run_directory_fields(dataset, tmp_path):
    config = tiny_config(rounds=3, observe="2")
    summary = run_training(config, tmp_path / "r", progress=False, dataset=dataset, split=make_tiny_split(dataset, 2))
    run = tmp_path / "r"
    cfg = read_json(run / "config.json")
    assert cfg["observe"] == [2] and cfg["archs"] == ["simple", "simple"] and cfg["classes"] == ["normal", "tumor"]
    assert cfg["dp"]["level"] == "none" and cfg["format_version"] == 1 and "command" in cfg
    assert sorted(p.name for p in (run / "observed").iterdir()) == ["round_2"]
    meta = read_json(run / "observed" / "round_2" / "meta.json")
    assert meta["kind"] == "full-model" and [c["client"] for c in meta["clients"]] == [0, 1]
    assert meta["clients"][0]["local_steps"] == 2 and meta["clients"][0]["bytes_up"] == summary["clients"][0]["bytes_up"]
    row = read_jsonl(run / "metrics.jsonl")[0]
    for key in ("round", "algorithm", "clients", "global_test_accuracy", "global_test_auc", "bytes_up", "bytes_down", "seconds"):
        assert key in row
    for key in ("id", "arch", "train_loss", "test_accuracy", "test_auc", "bytes_up", "bytes_down", "epsilon"):
        assert key in row["clients"][0]
    for key in ("algorithm", "rounds", "final_round", "clients", "global_test_accuracy", "global_test_auc",
                "mean_client_test_accuracy", "bytes_up_total", "bytes_down_total", "bytes_per_round", "wall_seconds",
                "dp_level", "epsilon", "delta", "noise_multiplier", "max_grad_norm", "privfed_version", "format_version"):
        assert key in summary
    assert summary["bytes_per_round"] == (summary["bytes_up_total"] + summary["bytes_down_total"]) / 3
    assert 0.0 <= summary["global_test_auc"] <= 1.0


@pytest.mark.parametrize("algorithm", ["fedavg", "partial", "local", "centralized"])
def test_eval_every_skips_test_figures_but_trains_the_same(dataset, tmp_path, algorithm):
    split = make_tiny_split(dataset, 2)
    every = run_training(tiny_config(algorithm=algorithm, rounds=3), tmp_path / "a", progress=False, dataset=dataset, split=split)
    sparse = run_training(tiny_config(algorithm=algorithm, rounds=3, eval_every=2), tmp_path / "b", progress=False,
                          dataset=dataset, split=split)
    assert strip_times(sparse) == strip_times(every)  # the last round is always tested, training unchanged
    rows_a, rows_b = rows_without_seconds(tmp_path / "a"), rows_without_seconds(tmp_path / "b")
    tested = [k for k in rows_a[0] if "test_" in k and rows_a[0][k] is not None]
    assert tested or algorithm == "local"
    for server_round, (a, b) in enumerate(zip(rows_a, rows_b), start=1):
        expect_tested = server_round in (2, 3)
        for key in tested:
            assert (b[key] is not None) == expect_tested and (not expect_tested or b[key] == a[key])
        for ca, cb in zip(a["clients"], b["clients"]):
            assert cb["train_loss"] == ca["train_loss"]
            assert (cb["test_accuracy"] is not None) == expect_tested
            if expect_tested:
                assert cb["test_accuracy"] == ca["test_accuracy"]
    assert read_json(tmp_path / "b" / "config.json")["eval_every"] == 2


def test_eval_every_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(PrivfedError, match="--eval-every"):
            tiny_config(eval_every=bad).validate()


def test_local_baseline_of_a_mixed_federation_trains_each_clients_own_architecture(dataset, tmp_path):
    """Local training in a mixed federation: client 1 trains its MobileNetV3, not a copy of client 0's model."""
    from safetensors.torch import load_file

    from privfed.models import build_model

    split = make_tiny_split(dataset, 2)
    summary = run_training(tiny_config(algorithm="local", rounds=1, archs=["simple", "mobilenet_v3_small"]),
                           tmp_path / "l", progress=False, dataset=dataset, split=split)
    assert [c["arch"] for c in summary["clients"]] == ["simple", "mobilenet_v3_small"]
    for k, arch in enumerate(("simple", "mobilenet_v3_small")):
        saved = load_file(str(tmp_path / "l" / "models" / f"client_{k}.safetensors"))
        expected = build_model(arch, 2, 32, 16).state_dict()
        assert set(saved) == set(expected)
        assert all(saved[name].shape == expected[name].shape for name in expected)
