"""Partial-weight aggregation: F maps, payload contents and bytes, mixed architectures."""

from __future__ import annotations

import torch

from privfed.federated import run_training
from privfed.federated.partial import PartialAggregation
from privfed.io import load_tensors, read_json, read_jsonl

from .conftest import make_tiny_split, tiny_config


def layer(width, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"shared.weight": torch.randn(width, width, generator=g), "shared.bias": torch.randn(width, generator=g)}


def test_f_inverse_of_f_is_identity_for_equal_and_smaller_widths():
    strategy = PartialAggregation(common_width=16, seed=3)
    for width in (16, 8, 5):
        original = layer(width, width)
        common = strategy.to_common(original)
        assert common["shared.weight"].shape == (16, 16) and common["shared.bias"].shape == (16,)
        back = strategy.from_common(common, width)
        for name in original:
            assert torch.allclose(back[name], original[name], atol=1e-5), (width, name)


def test_wider_client_is_projected_idempotently():
    strategy = PartialAggregation(common_width=4, seed=1)
    once = strategy.from_common(strategy.to_common(layer(8)), 8)
    twice = strategy.from_common(strategy.to_common(once), 8)
    assert torch.allclose(once["shared.weight"], twice["shared.weight"], atol=1e-5)
    assert torch.linalg.matrix_rank(once["shared.weight"]) <= 4


def test_equal_widths_mean_aggregate_is_plain_weighted_mean():
    from privfed.federated.strategy import ClientUpdate

    strategy = PartialAggregation(common_width=6)
    a, b = layer(6, 1), layer(6, 2)
    updates = [ClientUpdate(0, a, 1, 1, 1.0, 0.0), ClientUpdate(1, b, 3, 1, 1.0, 0.0)]
    out = strategy.aggregate_train(1, {}, updates)
    assert torch.allclose(out["shared.weight"], 0.25 * a["shared.weight"] + 0.75 * b["shared.weight"])


def test_heterogeneous_partial_run_sends_only_the_shared_layer(dataset, tmp_path):
    widths = [16, 8]
    config = tiny_config(algorithm="partial", archs=["simple", "mobilenet_v3_small"], shared_width=widths, rounds=2,
                         aggregation="median")
    summary = run_training(config, tmp_path / "run", progress=False, dataset=dataset, split=make_tiny_split(dataset, 2))
    run = tmp_path / "run"
    for row in read_jsonl(run / "metrics.jsonl"):
        for client, width in zip(row["clients"], widths):
            assert client["bytes_up"] == client["bytes_down"] == (width * width + width) * 4
        assert row["server_test_accuracy"] is not None
    for r in (1, 2):
        folder = run / "observed" / f"round_{r}"
        meta = read_json(folder / "meta.json")
        assert meta["kind"] == "shared-layer" and meta["common_width"] == 16
        for k, width in enumerate(widths):
            sent = load_tensors(folder / f"client_{k}.safetensors")
            assert set(sent) == {"shared.weight", "shared.bias"}
            assert sent["shared.weight"].shape == (width, width)
            before = load_tensors(folder / f"sent_client_{k}.safetensors")
            oracle = load_tensors(run / "oracle" / f"round_{r}" / f"client_{k}.safetensors")
            assert "fc.weight" in oracle and torch.equal(oracle["shared.weight"], before["shared.weight"])
        assert load_tensors(folder / "global_before.safetensors")["shared.weight"].shape == (16, 16)
        assert (folder / "server_model.safetensors").is_file()
    # the layer sent before round 2 is F^-1 of the server model after round 1
    server1 = load_tensors(run / "observed" / "round_1" / "server_model.safetensors")
    sent2 = load_tensors(run / "observed" / "round_2" / "sent_client_1.safetensors")
    expect = PartialAggregation(common_width=16, seed=0).from_common(server1, 8)
    assert torch.allclose(sent2["shared.weight"], expect["shared.weight"], atol=1e-6)
    assert summary["bytes_up_total"] == 2 * ((16 * 16 + 16) + (8 * 8 + 8)) * 4
    assert (run / "init" / "server.safetensors").is_file() and (run / "models" / "server.safetensors").is_file()
