"""Every architecture takes DP steps in every algorithm through the real engine (32x32, 1 round)."""

from __future__ import annotations

import pytest

from privfed.dp import DPConfig
from privfed.io import load_tensors, read_json, read_jsonl
from privfed.models import ARCHITECTURES

federated = pytest.importorskip("privfed.federated")

DP_SUMMARY_FIELDS = ("dp_level", "epsilon", "delta", "noise_multiplier", "max_grad_norm")


def run(tmp_path, dataset, split, **changes):
    base = dict(
        num_clients=len(split.clients), shared_width=16, rounds=1, batch_size=3, lr=0.05, image_size=32,
        data="synthetic", device="cpu", observe="first", eval_batch_size=16,
        dp=DPConfig(level="sample", noise_multiplier=1.0, max_grad_norm=1.0),
    )
    base.update(changes)
    config = federated.TrainConfig(**base)
    summary = federated.run_training(config, tmp_path, progress=False, dataset=dataset, split=split)
    return summary, read_jsonl(tmp_path / "metrics.jsonl"), read_json(tmp_path / "summary.json")


def check_dp_fields(summary: dict, rows: list[dict], on_disk: dict, num_clients: int) -> None:
    clients = rows[0]["clients"]
    assert len(clients) == num_clients
    assert all(isinstance(c["epsilon"], float) and c["epsilon"] > 0 for c in clients)
    for key in DP_SUMMARY_FIELDS:
        assert on_disk[key] == summary[key]
    assert on_disk["dp_level"] == "sample"
    assert on_disk["epsilon"] == pytest.approx(max(c["epsilon"] for c in clients))
    assert on_disk["noise_multiplier"] == 1.0 and on_disk["max_grad_norm"] == 1.0
    assert on_disk["delta"] == pytest.approx(1e-5)


@pytest.mark.parametrize(
    ("algorithm", "arch"),
    [("fedavg", arch) for arch in ARCHITECTURES] + [("fedprox", "simple"), ("fednova", "mobilenet_v3_small")],
)
def test_full_model_algorithm_trains_privately(tmp_path, synthetic_images, make_split, algorithm, arch) -> None:
    split = make_split(synthetic_images, 1)
    summary, rows, on_disk = run(tmp_path, synthetic_images, split, algorithm=algorithm, archs=[arch], server_arch=arch, mu=0.1)
    check_dp_fields(summary, rows, on_disk, 1)
    sent = load_tensors(tmp_path / "observed" / "round_1" / "client_0.safetensors")
    assert not any(name.startswith("_module") for name in sent)
    assert "fc.weight" in sent and "shared.weight" in sent


def test_partial_with_every_architecture_trains_privately(tmp_path, synthetic_images, make_split) -> None:
    split = make_split(synthetic_images, len(ARCHITECTURES), per_client=4)
    summary, rows, on_disk = run(
        tmp_path, synthetic_images, split, algorithm="partial", archs=list(ARCHITECTURES), server_arch="simple", server_epochs=0
    )
    check_dp_fields(summary, rows, on_disk, len(ARCHITECTURES))
    for k in range(len(ARCHITECTURES)):
        sent = load_tensors(tmp_path / "observed" / "round_1" / f"client_{k}.safetensors")
        assert set(sent) == {"shared.weight", "shared.bias"}


def test_client_level_dp_through_engine_reports_epsilon(tmp_path, synthetic_images, make_split) -> None:
    split = make_split(synthetic_images, 2)
    dp = DPConfig(level="client", noise_multiplier=2.0, max_grad_norm=0.5)
    summary, rows, on_disk = run(tmp_path, synthetic_images, split, algorithm="fedavg", archs=["simple"], dp=dp)
    assert on_disk["dp_level"] == "client" and on_disk["max_grad_norm"] == 0.5 and on_disk["noise_multiplier"] == 2.0
    assert all(c["epsilon"] > 0 for c in rows[0]["clients"])
    assert on_disk["delta"] == pytest.approx(1e-5)  # min(1e-5, 1 / num_clients)
