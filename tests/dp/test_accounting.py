"""Epsilon composes over every round with the true sampling rate, and survives --resume."""

from __future__ import annotations

import json

import pytest
import torch
from opacus.accountants import RDPAccountant
from torch import nn

from privfed.dp import DPConfig, SampleLevelPrivacy, epsilon_for
from privfed.models import build_model


def independent_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    accountant = RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    return accountant.get_epsilon(delta=delta)


def train_round(privacy: SampleLevelPrivacy, model: nn.Module, loader, gen: torch.Generator) -> int:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    steps = 0
    with privacy.training(model, optimizer, loader, gen) as (pmodel, popt, ploader):
        for x, y in ploader:
            popt.zero_grad()
            nn.functional.cross_entropy(pmodel(x), y).backward()
            popt.step()
            steps += 1
    return steps


def test_epsilon_matches_independent_rdp_over_rounds_and_is_not_reset(tiny_loader) -> None:
    n, batch, rounds = 16, 4, 3
    loader = tiny_loader(n, batch)
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.1), n, batch, steps_per_round=4, rounds=rounds)
    assert privacy.sample_rate == pytest.approx(batch / n)
    assert privacy.delta == pytest.approx(1e-5)
    torch.manual_seed(0)
    model = build_model("simple", image_size=32, shared_width=8, dp=True)
    gen = torch.Generator().manual_seed(0)
    eps_per_round, total = [], 0
    for _ in range(rounds):
        steps = train_round(privacy, model, loader, gen)
        assert steps == privacy.steps_per_epoch == 4  # int(1 / q) Poisson batches a pass
        total += steps
        eps_per_round.append(privacy.epsilon())
        assert privacy.epsilon() == pytest.approx(independent_epsilon(1.1, 0.25, total, 1e-5), rel=1e-12)
    assert eps_per_round[0] < eps_per_round[1] < eps_per_round[2]  # composed, never reset


def test_target_epsilon_solved_noise_meets_target_after_planned_steps() -> None:
    config = DPConfig("sample", target_epsilon=3.0, delta=1e-5)
    privacy = SampleLevelPrivacy(config, num_samples=300, batch_size=30, steps_per_round=10, rounds=5)
    reached = epsilon_for(privacy.noise_multiplier, 0.1, 50, 1e-5)
    assert 3.0 - 0.02 <= reached <= 3.0
    assert reached == pytest.approx(independent_epsilon(privacy.noise_multiplier, 0.1, 50, 1e-5))


def test_more_planned_rounds_need_more_noise() -> None:
    config = DPConfig("sample", target_epsilon=2.0)
    few = SampleLevelPrivacy(config, num_samples=300, batch_size=30, steps_per_round=10, rounds=2)
    many = SampleLevelPrivacy(config, num_samples=300, batch_size=30, steps_per_round=10, rounds=20)
    assert many.noise_multiplier > few.noise_multiplier


def test_state_dict_round_trips_through_json(tiny_loader) -> None:
    n, batch = 16, 4
    loader = tiny_loader(n, batch)
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=0.9), n, batch, steps_per_round=4, rounds=2)
    torch.manual_seed(0)
    train_round(privacy, build_model("simple", image_size=32, shared_width=8, dp=True), loader, torch.Generator().manual_seed(1))
    state = json.loads(json.dumps(privacy.state_dict()))
    restored = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=0.9), n, batch, steps_per_round=4, rounds=2)
    assert restored.epsilon() == 0.0
    restored.load_state_dict(state)
    assert restored.epsilon() == privacy.epsilon() > 0
    assert restored.steps == privacy.steps == 4


def test_resuming_with_other_noise_is_refused() -> None:
    from privfed.errors import PrivfedError

    a = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=0.9), 16, 4, 4, 2)
    b = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.5), 16, 4, 4, 2)
    with pytest.raises(PrivfedError, match="noise_multiplier"):
        b.load_state_dict(a.state_dict())
