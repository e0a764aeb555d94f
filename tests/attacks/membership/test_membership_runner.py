"""The runner on a stand-in run view: file name, field names and balanced candidates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from attacks.membership.runner import MembershipOptions, run_membership_on_view
from privfed.errors import PrivfedError
from privfed.models import build_model

FIELDS = {
    "attack", "method", "target", "knowledge", "model", "n_members", "n_nonmembers", "auc", "auc_ci",
    "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci", "tpr_at_01pct_fpr", "tpr_at_01pct_fpr_ci", "balanced_accuracy",
    "balanced_accuracy_ci", "epsilon_lower_bound", "epsilon_claimed", "delta", "seconds", "threat_model", "roc",
}


@dataclass
class _Split:
    clients: list
    server: list
    test: list


class FakeRun:
    """Two clients of a fedavg run, one observed round, 32x32 images addressed by id."""

    algorithm = "fedavg"
    num_clients = 2
    image_size = 32
    num_classes = 2
    uses_dp_models = False

    def __init__(self, path: Path, noise) -> None:
        self.path = path
        self.config = {"algorithm": "fedavg", "rounds": 1, "local_epochs": 1, "lr": 0.01, "batch_size": 8, "momentum": 0.9, "seed": 0}
        ids = [f"s{i}" for i in range(60)]
        self.split = _Split(clients=[ids[:10], ids[10:20]], server=ids[20:36], test=ids[36:])
        images, labels = noise(60, 0)
        self._data = {i: (images[n], labels[n]) for n, i in enumerate(ids)}
        torch.manual_seed(0)
        self._model = build_model("simple", image_size=32, shared_width=16)
        self._before = {n: p.detach().clone() for n, p in self._model.named_parameters()}

    def require_target(self, target):
        if target not in ("full-model", "shared-layer"):
            raise PrivfedError(f"unknown --target {target!r}")

    def observed_rounds(self):
        return [1]

    def round_clients(self, r):
        return [0, 1]

    def attacker_model(self, r, k, knowledge, device="cpu"):
        return self._model

    def update(self, r, k):
        x, y = self.images(self.split.clients[k])
        loss = torch.nn.functional.cross_entropy(self._model(x), y, reduction="sum")
        grads = torch.autograd.grad(loss, list(self._model.parameters()))
        return {n: -0.01 * g for (n, _), g in zip(self._model.named_parameters(), grads)}

    def target_model(self, target, name, knowledge="none", device="cpu"):
        return self._model.eval()

    def images(self, ids):
        return torch.stack([self._data[i][0] for i in ids]), torch.stack([self._data[i][1] for i in ids])

    def delta(self):
        return 1e-5

    def epsilon_claimed(self, k=None):
        return None


def test_runner_writes_contract_fields(tmp_path, noise):
    view = FakeRun(tmp_path, noise)
    options = MembershipOptions(
        target="full-model", methods=["loss", "lira-offline", "update-cosine"], knowledge=["none", "full"],
        reference_models=2, max_members=8, n_bootstrap=10, device="cpu", reference_epochs=1,
    )
    path = run_membership_on_view(view, options, progress=False)
    assert path == tmp_path / "attacks" / "membership-full-model.json"
    data = json.loads(path.read_text())
    assert data["format_version"] == 1 and data["target"] == "full-model"
    rows = data["results"]
    # 2 clients + global x (loss, lira-offline) once, + 2 clients x update-cosine x 2 knowledge levels
    assert len(rows) == 3 * 2 + 2 * 2
    for row in rows:
        assert FIELDS <= set(row)
        assert row["n_members"] == row["n_nonmembers"] == 8
        assert 0.0 <= row["auc"] <= 1.0 and len(row["roc"]["fpr"]) <= 200
        assert row["epsilon_claimed"] is None
        assert row["position"] == ("oracle" if row["knowledge"] == "full" else "realistic")
    # the target model never trained on the members: score attacks find nothing, and with 8 + 8
    # candidates no bound can be claimed
    for row in rows:
        if row["method"] != "update-cosine":
            assert row["epsilon_lower_bound"] == 0.0 and row["auc_ci"][0] < 0.5  # nothing claimed
    # FedAvg: the knowledge levels' models coincide, so update-cosine ran once and "full" is a copy
    full = [r for r in rows if r["knowledge"] == "full"]
    assert full and all(r["same_as_knowledge"] == "none" for r in full)
    positions = data["positions"]
    realistic = positions["realistic"]
    assert realistic["familywise_alpha"] == pytest.approx(0.05 / 8)  # 8 distinct realistic rows
    assert realistic["leaks"] == (realistic["auc_ci"][0] > 0.5)
    best = next(r for r in rows if (r["method"], r["model"], r["knowledge"]) ==
                (realistic["method"], realistic["model"], realistic["knowledge"]))
    assert realistic["auc"] == best["auc"]
    lo, hi = realistic["auc_ci"]
    assert hi - lo > best["auc_ci"][1] - best["auc_ci"][0] - 0.05  # familywise interval no narrower than the row's
    assert positions["oracle"]["rows"] == 2  # the copies count once: update-cosine on client_0 and client_1
    assert {r["model"] for r in rows} == {"client_0", "client_1", "global"}
    assert (tmp_path / "attacks" / "membership-full-model" / "roc.png").stat().st_size > 1000
    again = json.loads(run_membership_on_view(view, options, progress=False).read_text())
    assert [r["auc"] for r in again["results"]] == [r["auc"] for r in rows]  # deterministic under seed


def test_runner_rejects_bad_options(tmp_path, noise):
    view = FakeRun(tmp_path, noise)
    with pytest.raises(PrivfedError, match="--method"):
        run_membership_on_view(view, MembershipOptions(methods=["lira-onlne"]), progress=False)
    with pytest.raises(PrivfedError, match="--reference-models"):
        run_membership_on_view(view, MembershipOptions(methods=["lira-online"], reference_models=1), progress=False)
    with pytest.raises(PrivfedError, match="--client 5"):
        run_membership_on_view(view, MembershipOptions(methods=["loss"], clients=[5]), progress=False)
