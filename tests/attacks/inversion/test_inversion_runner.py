"""The runner on a stand-in for attacks.run_access.RunView: JSON contract, PNGs, replay, DP."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from attacks.inversion.base import ClientStep
from attacks.inversion.runner import InversionOptions, attack_view
from attacks.inversion.simulate import client_update
from privfed.errors import PrivfedError

RESULT_FIELDS = {
    "attack", "method", "target", "knowledge", "round", "client", "batch_size", "local_steps", "n_trials", "psnr_mean",
    "psnr_max", "ssim_mean", "ssim_max", "mse_mean", "label_accuracy", "feature_rel_error", "seconds", "iterations",
    "priors", "threat_model", "images", "samples", "source",
}


@dataclass
class FakeSplit:
    clients: list
    server: list
    test: list = field(default_factory=list)


@dataclass
class FakeRun:
    """Just what the runner reads of a RunView, for a one-client fedavg run observed in round 1."""

    path: Path
    images_by_id: dict
    labels_by_id: dict
    model: torch.nn.Module
    update_: dict
    dp: dict = field(default_factory=lambda: {"level": "none"})
    algorithm: str = "fedavg"
    image_size: int = 32
    num_classes: int = 2

    @property
    def config(self):
        return {"seed": 0, "dp": self.dp}

    @property
    def split(self):
        return FakeSplit(clients=[["c0", "c1", "c2", "c3"]], server=["s0", "s1", "s2"], test=["t0", "t1"])

    def require_target(self, target):
        if target not in ("full-model", "shared-layer"):
            raise PrivfedError(f"unknown --target {target!r}")

    def observed_rounds(self):
        return [1]

    def round_clients(self, r):
        return [0]

    def client_meta(self, r, k):
        return {"client": 0, "num_samples": 4, "local_steps": 2, "batch_size": 2, "lr": 0.01, "momentum": 0.0}

    def client_ids(self, k):
        return list(self.split.clients[k])

    def client_arch(self, k):
        return "simple"

    def attacker_model(self, r, k, knowledge, device="cpu"):
        return self.model

    def images(self, ids):
        return torch.stack([self.images_by_id[i] for i in ids]), torch.tensor([self.labels_by_id[i] for i in ids])

    def update(self, r, k):
        return self.update_


@pytest.fixture
def fake_run(tmp_path, simple_model, mri):
    images = mri(9, seed=9)[0]
    ids = ["c0", "c1", "c2", "c3", "s0", "s1", "s2", "t0", "t1"]
    labels = [0, 1, 1, 0, 0, 1, 0, 1, 0]
    update = client_update(simple_model, images[:4], torch.tensor(labels[:4]), ClientStep(lr=0.01, local_steps=2, batch_size=2),
                           [n for n, _ in simple_model.named_parameters()])
    return FakeRun(tmp_path, dict(zip(ids, images)), dict(zip(ids, labels)), simple_model, update)


def test_observed_rows_follow_the_run_directory_contract(fake_run):
    options = InversionOptions(target="full-model", knowledge=["full"], methods=["analytic", "shared-analytic"],
                               iterations=5, max_images=2, device="cpu")
    path = attack_view(fake_run, options, progress=False)
    assert path == fake_run.path / "attacks" / "inversion-full-model.json"
    data = json.loads(path.read_text())
    assert data["format_version"] == 1 and data["target"] == "full-model"
    assert [r["method"] for r in data["results"]] == ["analytic", "shared-analytic"]
    for row in data["results"]:
        assert RESULT_FIELDS <= set(row)
        assert row["source"] == "observed" and row["n_trials"] == 2 and len(row["samples"]) == 2
        assert row["feature_rel_error"] is None  # full-model target
        assert (row["batch_size"], row["local_steps"]) == (2, 2)
        assert {s["sample_id"] for s in row["samples"]} <= {"c0", "c1", "c2", "c3"}
        assert "server-mean-init" in row["priors"] and "greyscale" in row["priors"]
        assert "knowledge" not in row["threat_model"] and "oracle" in row["threat_model"]
        for key in ("reconstructions", "originals"):
            assert (fake_run.path / "attacks" / row["images"][key]).is_file()


def test_replay_at_batch_one_leaks_features_exactly_and_dp_hides_them(fake_run):
    options = InversionOptions(target="shared-layer", knowledge=["full"], methods=["shared-analytic"], iterations=5,
                               batch_size=1, device="cpu")
    row = json.loads(attack_view(fake_run, options, progress=False).read_text())["results"][0]
    assert row["source"] == "replay" and row["batch_size"] == 1 and row["local_steps"] == 1
    assert row["feature_rel_error"] < 1e-4
    assert row["label_accuracy"] == 1.0
    fake_run.dp = {"level": "sample", "noise_multiplier": 1.0, "max_grad_norm": 1.0}
    noisy = json.loads(attack_view(fake_run, options, progress=False).read_text())["results"][0]
    assert noisy["dp_level"] == "sample" and noisy["feature_rel_error"] > 0.3


def test_bad_options_name_the_option(fake_run):
    with pytest.raises(PrivfedError, match="--method"):
        attack_view(fake_run, InversionOptions(target="full-model", methods=["inverting-gradient"]), progress=False)
    with pytest.raises(PrivfedError, match="--target shared-layer"):
        attack_view(fake_run, InversionOptions(target="shared-layer", methods=["dlg"]), progress=False)
    with pytest.raises(PrivfedError, match="--round 3"):
        attack_view(fake_run, InversionOptions(target="full-model", rounds=[3]), progress=False)


def _replays(mri, guess):
    """One scored replay per real MRI slice (batch 1), the attack's output being ``guess(slice)``."""
    from attacks.inversion.runner import _score

    images, labels = mri(4, size=32, seed=3)
    server, _ = mri(8, size=32, seed=5)  # other slices stand in for the server's own images
    pool_ids = [f"pool{i}" for i in range(4)] + [f"img{i}" for i in range(4)]
    pool = torch.cat([server[:4], images])
    parts = [_score(guess(images[i : i + 1]), images[i : i + 1], [f"img{i}"], [int(labels[i])], [int(labels[i])],
                    server[i : i + 1], server.mean(0), pool_ids, pool) for i in range(4)]
    return parts, pool_ids, pool


def test_an_output_that_ignores_its_input_gains_nothing_over_the_attack_on_other_images(mri):
    """A smooth average head, the same whatever the image, must not read as a leak (it beats the mean image)."""
    from attacks.inversion.runner import _merge, leakage_fields

    images, _ = mri(4, size=32, seed=3)
    generic = torch.nn.functional.avg_pool2d(images.mean(0, keepdim=True), 3, 1, 1)  # knows all 4, favours none
    parts, pool_ids, pool = _replays(mri, lambda image: generic)
    merged = _merge(parts, pool_ids, pool)
    fields = leakage_fields(merged, len(pool_ids))
    assert fields["null_method"] == "attack-on-other-images"
    assert fields["gain_db"] == pytest.approx(0.0, abs=1e-9)
    # without that null the same output would be scored against the server's mean image and look like a gain
    without = dataclasses.replace(merged, null_other_psnr=[], null_other_ranks=[])
    assert leakage_fields(without, len(pool_ids))["gain_db"] > 0.5


def test_an_exact_reconstruction_still_gains_over_the_attack_on_other_images(mri):
    from attacks.inversion.runner import _merge, _other_trials_null, leakage_fields

    parts, pool_ids, pool = _replays(mri, lambda image: image.clone())
    merged = _merge(parts, pool_ids, pool)
    psnrs, ranks = _other_trials_null(parts, pool_ids, pool)
    assert len(psnrs) == 4 and all(rank > 1 for rank in ranks)  # another slice never identifies this one
    fields = leakage_fields(merged, len(pool_ids))
    assert fields["gain_db"] > 20 and fields["identification_top1"] == 1.0
    assert _other_trials_null(parts[:1], pool_ids, pool) == ([], [])  # one trial: nothing to borrow from
