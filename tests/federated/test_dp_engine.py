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


def test_client_level_update_is_clipped_to_the_bound_and_noised_with_the_promised_std(dataset, tmp_path):
    """Same seed with and without noise: training is identical (noise has its own stream), so the two
    messages differ by exactly the noise, whose std must be sigma x C; the noiseless one sits on the bound."""
    clip, sigma = 0.01, 2.0
    sent = {}
    for noise in (0.0, sigma):
        config = tiny_config(algorithm="fedavg", rounds=1, dp=DPConfig(level="client", noise_multiplier=noise, max_grad_norm=clip))
        run_training(config, tmp_path / f"r{noise}", progress=False, dataset=dataset, split=make_tiny_split(dataset, 2))
        folder = tmp_path / f"r{noise}" / "observed" / "round_1"
        before = load_tensors(folder / "global_before.safetensors")
        sent[noise] = [{n: t - before[n] for n, t in load_tensors(folder / f"client_{k}.safetensors").items()
                        if t.is_floating_point()} for k in range(2)]
    for k in range(2):
        clean, noisy = sent[0.0][k], sent[sigma][k]
        norm = torch.sqrt(sum((t.double() ** 2).sum() for t in clean.values()))
        assert abs(float(norm) - clip) < 1e-5  # the real update is far larger than C: clipped onto the bound
        noise = torch.cat([(noisy[n] - clean[n]).flatten().double() for n in clean])
        assert noise.numel() > 5000
        assert abs(float(noise.std()) / (sigma * clip) - 1) < 0.05 and abs(float(noise.mean())) < 4 * sigma * clip / noise.numel() ** 0.5
    rows = read_jsonl(tmp_path / "r0.0" / "metrics.jsonl")
    # zero noise: epsilon is infinite, which JSON stores as null (dp_level says DP was on)
    assert all(c["epsilon"] is None for c in rows[0]["clients"])
