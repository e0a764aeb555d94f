"""Client-level DP: clipping to the bound, noise of the promised scale, composed epsilon."""

from __future__ import annotations

import json
import math

import pytest

from privfed.errors import PrivfedError
import torch
from opacus.accountants import RDPAccountant

from privfed.dp import ClientLevelPrivacy, DPConfig


def make(noise: float, clip: float = 1.0, num_clients: int = 10, per_round: int = 3, rounds: int = 5):
    return ClientLevelPrivacy(DPConfig("client", noise_multiplier=noise, max_grad_norm=clip), num_clients, per_round, rounds)


def test_noise_on_zero_update_has_std_sigma_times_clip() -> None:
    privacy = make(noise=0.8, clip=2.5)
    update = {"shared.weight": torch.zeros(300, 200), "shared.bias": torch.zeros(300)}
    out = privacy.privatize(update, torch.Generator().manual_seed(0))
    values = torch.cat([out["shared.weight"].flatten(), out["shared.bias"].flatten()])
    assert values.std().item() == pytest.approx(0.8 * 2.5, rel=0.02)
    assert abs(values.mean().item()) < 0.02
    assert out["shared.weight"].shape == (300, 200) and out["shared.weight"].dtype == torch.float32


def test_huge_update_is_clipped_to_the_bound_without_noise() -> None:
    privacy = make(noise=0.0, clip=1.5)
    g = torch.Generator().manual_seed(1)
    update = {"a": torch.randn(50, 40, generator=g) * 1e4, "b": torch.randn(7, generator=g) * 1e4}
    out = privacy.privatize(update, torch.Generator().manual_seed(0))
    joint = math.sqrt(sum(float(v.pow(2).sum()) for v in out.values()))
    assert joint == pytest.approx(1.5, rel=1e-5)
    # direction kept: every tensor scaled by the same factor
    ratio = out["a"] / update["a"]
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4)
    assert torch.allclose(out["b"] / update["b"], ratio.flatten()[0].expand(7), rtol=1e-4)


def test_small_update_is_left_unscaled_and_integers_pass_through() -> None:
    privacy = make(noise=0.0, clip=10.0)
    update = {"w": torch.full((3,), 0.5), "steps": torch.tensor([4])}
    out = privacy.privatize(update, torch.Generator().manual_seed(0))
    assert torch.equal(out["w"], update["w"])
    assert torch.equal(out["steps"], update["steps"])


def test_same_seed_same_noise() -> None:
    update = {"w": torch.zeros(10), "v": torch.zeros(3)}
    a = make(1.0).privatize(update, torch.Generator().manual_seed(7))
    b = make(1.0).privatize(dict(reversed(list(update.items()))), torch.Generator().manual_seed(7))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_epsilon_is_rdp_over_participated_rounds_without_sampling_amplification() -> None:
    # The server picks the participants, so client sampling gives no amplification against it.
    privacy = make(noise=1.3, num_clients=10, per_round=3)
    assert privacy.sample_rate == 1.0
    update = {"w": torch.zeros(4)}
    for participated in range(1, 4):
        privacy.privatize(update, torch.Generator().manual_seed(participated))
        reference = RDPAccountant()  # replacing one hospital: sensitivity 2C, i.e. noise multiplier 1.3 / 2
        reference.history = [(1.3 / 2, 1.0, participated)]
        assert privacy.epsilon() == pytest.approx(reference.get_epsilon(delta=1e-5), rel=1e-12)
    state = json.loads(json.dumps(privacy.state_dict()))
    restored = make(noise=1.3, num_clients=10, per_round=3)
    restored.load_state_dict(state)
    assert restored.epsilon() == privacy.epsilon()


def test_client_target_epsilon_is_met_over_all_rounds() -> None:
    privacy = ClientLevelPrivacy(DPConfig("client", target_epsilon=5.0, delta=1e-3), 20, 5, rounds=10)
    reference = RDPAccountant()
    reference.history = [(privacy.noise_multiplier / 2, 1.0, 10)]
    assert 5.0 - 0.02 <= reference.get_epsilon(delta=1e-3) <= 5.0


def test_replacing_a_hospital_costs_twice_the_sensitivity_of_adding_one() -> None:
    """The study issue's figures: sigma 1 over 5 rounds is 30.1 for replace-one (2C) and 12.3 for add/remove (C)."""
    epsilons = {}
    for relation in ("replace", "add-remove"):
        privacy = ClientLevelPrivacy(DPConfig("client", noise_multiplier=1.0, neighbouring=relation), 4, 4, rounds=5)
        for r in range(5):
            privacy.privatize({"w": torch.zeros(3)}, torch.Generator().manual_seed(r))
        epsilons[relation] = privacy.epsilon()
        assert privacy.neighbouring == relation and privacy.noise_multiplier == 1.0  # the noise itself is unchanged
    assert epsilons["replace"] == pytest.approx(30.13, abs=0.01) and epsilons["add-remove"] == pytest.approx(12.30, abs=0.01)
    assert DPConfig("client", noise_multiplier=1.0).relation == "replace"
    assert DPConfig("sample", noise_multiplier=1.0).relation == "add-remove"
    with pytest.raises(PrivfedError, match="--neighbouring replace is for --dp-level client"):
        DPConfig("sample", noise_multiplier=1.0, neighbouring="replace").validate()
