"""Aggregation rules and server-side strategies on hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from privfed.errors import PrivfedError
from privfed.federated.aggregation import make_aggregation
from privfed.federated.fednova import FedNova, momentum_a_norm
from privfed.federated.strategy import ClientUpdate, FedAvg


def update(k, w, n, steps=1, a_norm=None):
    return ClientUpdate(k, {"w": torch.tensor(w, dtype=torch.float32)}, n, steps, float(steps if a_norm is None else a_norm), 0.0)


def test_fedavg_is_sample_weighted_mean():
    updates = [update(0, [1.0, 2.0], 10), update(1, [4.0, -1.0], 30)]
    new = FedAvg().aggregate_train(1, {"w": torch.zeros(2)}, updates)
    # (10*1 + 30*4)/40 = 3.25 ; (10*2 + 30*-1)/40 = -0.25
    assert torch.allclose(new["w"], torch.tensor([3.25, -0.25]))


def test_integer_buffers_are_not_averaged():
    states = [{"n": torch.tensor(3)}, {"n": torch.tensor(5)}]
    assert make_aggregation("mean").aggregate(states, [1, 1])["n"].item() == 5


def test_coordinate_median():
    tensors = [torch.tensor([1.0, 10.0]), torch.tensor([2.0, -5.0]), torch.tensor([100.0, 0.0])]
    out = make_aggregation("median").combine(tensors, [1, 1, 1])
    assert out.tolist() == [2.0, 0.0]
    even = make_aggregation("median").combine(tensors[:2], [1, 1])
    assert even.tolist() == [1.5, 2.5]


def test_trimmed_mean_drops_extremes():
    tensors = [torch.tensor([float(v)]) for v in (1, 2, 3, 4, 1000)]
    out = make_aggregation("trimmed_mean", trim_fraction=0.2).combine(tensors, [1] * 5)
    assert out.item() == pytest.approx(3.0)  # drops 1 and 1000
    untrimmed = make_aggregation("trimmed_mean", trim_fraction=0.1).combine(tensors, [1] * 5)
    assert untrimmed.item() == pytest.approx(202.0)  # floor(0.5) = 0 values cut


def test_bad_trim_fraction_names_option():
    with pytest.raises(PrivfedError, match="--trim-fraction"):
        make_aggregation("trimmed_mean", trim_fraction=0.6)


def test_fednova_equal_steps_equals_fedavg():
    g = {"w": torch.tensor([0.5, -0.5])}
    updates = [update(0, [1.0, 2.0], 10, steps=4), update(1, [4.0, -1.0], 30, steps=4)]
    nova = FedNova().aggregate_train(1, g, updates)
    avg = FedAvg().aggregate_train(1, g, updates)
    assert torch.allclose(nova["w"], avg["w"], atol=1e-6)


def test_fednova_unequal_steps_hand_computed():
    g = {"w": torch.tensor([0.0])}
    # client 0: n=10, tau=2, w=-2 (Delta=2, Delta/tau = 1); client 1: n=30, tau=6, w=-3 (Delta/tau = 0.5)
    updates = [update(0, [-2.0], 10, steps=2), update(1, [-3.0], 30, steps=6)]
    new = FedNova().aggregate_train(1, g, updates)
    tau_eff = 0.25 * 2 + 0.75 * 6  # 5.0
    d = 0.25 * 1.0 + 0.75 * 0.5  # 0.625
    assert new["w"].item() == pytest.approx(0.0 - tau_eff * d)  # -3.125, FedAvg would give -2.75


def test_momentum_a_norm_matches_brute_force():
    rho, tau = 0.9, 7
    # coefficient of gradient t in the total change: sum_{s=t}^{tau-1} rho^(s-t)
    brute = sum(sum(rho ** (s - t) for s in range(t, tau)) for t in range(tau))
    assert momentum_a_norm(tau, rho) == pytest.approx(brute)
    assert momentum_a_norm(5, 0.0) == 5
