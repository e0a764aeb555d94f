"""The engine with privfed.dp: epsilon per client per round, noised payloads, resume of accountants."""

from __future__ import annotations

import torch

from privfed.dp import DPConfig
from privfed.federated import run_training
from privfed.io import load_tensors, read_jsonl

from .conftest import make_tiny_split, tiny_config


def test_sample_level_epsilon_grows_and_summary_takes_the_max(dataset, tmp_path):
    config = tiny_config(algorithm="fedprox", mu=0.1, rounds=2, dp=DPConfig(level="sample", noise_multiplier=1.0))
    split = make_tiny_split(dataset, 2, sizes=[10, 16])
    summary = run_training(config, tmp_path / "a", progress=False, dataset=dataset, split=split)
    rows = read_jsonl(tmp_path / "a" / "metrics.jsonl")
    eps = [[c["epsilon"] for c in row["clients"]] for row in rows]
    assert all(e > 0 for e in eps[0]) and all(b > a for a, b in zip(eps[0], eps[1]))
    assert summary["epsilon"] == max(eps[1]) and summary["dp_level"] == "sample"
    assert summary["noise_multiplier"] == 1.0 and 0 < summary["delta"] < 1 and summary["max_grad_norm"] == 1.0
    sent = load_tensors(tmp_path / "a" / "observed" / "round_1" / "client_0.safetensors")
    assert "shared.weight" in sent and not any(k.startswith("_module") for k in sent)

    # resume restores the accountants: the same final epsilon
    run_training(config, tmp_path / "b", progress=False, dataset=dataset, split=split, stop_after_round=1)
    resumed = run_training(None, tmp_path / "b", resume=True, progress=False, dataset=dataset, split=split)
    assert resumed["epsilon"] == summary["epsilon"]
    assert resumed["clients"] == summary["clients"]


def test_client_level_update_is_clipped_and_noised(dataset, tmp_path):
    clip = 0.5
    config = tiny_config(algorithm="partial", rounds=1, server_epochs=0,
                         dp=DPConfig(level="client", noise_multiplier=0.0, max_grad_norm=clip))
    run_training(config, tmp_path / "r", progress=False, dataset=dataset, split=make_tiny_split(dataset, 2))
    folder = tmp_path / "r" / "observed" / "round_1"
    for k in range(2):
        sent = load_tensors(folder / f"client_{k}.safetensors")
        before = load_tensors(folder / f"sent_client_{k}.safetensors")
        norm = torch.sqrt(sum(((sent[n] - before[n]) ** 2).sum() for n in sent))
        assert norm <= clip + 1e-4
    rows = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    # zero noise: epsilon is infinite, which JSON stores as null (dp_level says DP was on)
    assert all(c["epsilon"] is None for c in rows[0]["clients"])
