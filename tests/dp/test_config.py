"""Every impossible DP option is a PrivfedError that names the option."""

from __future__ import annotations

import pytest

from privfed.dp import LEVEL_HELP, ClientLevelPrivacy, DPConfig, SampleLevelPrivacy, default_delta
from privfed.errors import PrivfedError


@pytest.mark.parametrize(
    ("config", "option"),
    [
        (DPConfig(level="sample", noise_multiplier=-0.5), "--noise-multiplier"),
        (DPConfig(level="sample", noise_multiplier=1.0, delta=1.0), "--delta"),
        (DPConfig(level="sample", noise_multiplier=1.0, delta=2.5), "--delta"),
        (DPConfig(level="sample", noise_multiplier=1.0, delta=0.0), "--delta"),
        (DPConfig(level="sample", target_epsilon=0.0), "--target-epsilon"),
        (DPConfig(level="client", target_epsilon=-3.0), "--target-epsilon"),
        (DPConfig(level="sample", noise_multiplier=1.0, max_grad_norm=0.0), "--max-grad-norm"),
        (DPConfig(level="client", noise_multiplier=1.0, max_grad_norm=-1.0), "--max-grad-norm"),
        (DPConfig(level="sample", noise_multiplier=float("nan")), "--noise-multiplier"),
        (DPConfig(level="sampel", noise_multiplier=1.0), "--dp-level"),
        (DPConfig(level="sample"), "--noise-multiplier or --target-epsilon"),
        (DPConfig(level="sample", noise_multiplier=1.0, target_epsilon=3.0), "mutually exclusive"),
    ],
)
def test_bad_value_names_the_option(config: DPConfig, option: str) -> None:
    with pytest.raises(PrivfedError, match=option.replace("-", r"\-")):
        config.validate()
    with pytest.raises(PrivfedError, match=option.replace("-", r"\-")):
        SampleLevelPrivacy(config, num_samples=100, batch_size=10, steps_per_round=10, rounds=2)
    with pytest.raises(PrivfedError, match=option.replace("-", r"\-")):
        ClientLevelPrivacy(config, num_clients=4, clients_per_round=2, rounds=2)


def test_misspelt_level_suggests_the_right_one() -> None:
    with pytest.raises(PrivfedError, match="did you mean 'sample'"):
        DPConfig(level="sampel", noise_multiplier=1.0).validate()


def test_unreachable_target_epsilon_names_option_and_floor() -> None:
    # RDP's (epsilon, delta) conversion has a floor near 0.1 at delta=1e-5: 0.01 is unreachable.
    config = DPConfig(level="sample", target_epsilon=0.01)
    with pytest.raises(PrivfedError, match=r"--target-epsilon 0\.01 cannot be reached.*smallest epsilon"):
        SampleLevelPrivacy(config, num_samples=1000, batch_size=10, steps_per_round=100, rounds=10)


def test_none_level_accepts_defaults() -> None:
    DPConfig().validate()


def test_default_delta_is_min_of_1e5_and_one_over_n() -> None:
    assert default_delta(10) == 1e-5
    assert default_delta(1_000_000) == 1e-6
    privacy = SampleLevelPrivacy(DPConfig("sample", 1.0), num_samples=200_000, batch_size=10, steps_per_round=1, rounds=1)
    assert privacy.delta == 5e-6
    client = ClientLevelPrivacy(DPConfig("client", 1.0), num_clients=4, clients_per_round=4, rounds=1)
    assert client.delta == 1e-5


def test_level_help_says_what_each_level_protects() -> None:
    assert "single image" in LEVEL_HELP["sample"]
    assert "whole hospital" in LEVEL_HELP["client"]


def test_config_round_trips_through_dict() -> None:
    config = DPConfig(level="client", noise_multiplier=0.7, max_grad_norm=2.0, delta=1e-6)
    assert DPConfig.from_dict(config.to_dict()) == config
    assert set(config.to_dict()) == {"level", "noise_multiplier", "max_grad_norm", "target_epsilon", "delta", "neighbouring", "clipping"}
