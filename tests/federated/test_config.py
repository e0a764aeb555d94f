"""TrainConfig: layering, validation naming the option, unknown keys with suggestions."""

from __future__ import annotations

import pytest

from privfed.errors import PrivfedError
from privfed.federated import TrainConfig, build_config, load_config

from .conftest import tiny_config


def test_unknown_key_in_toml_names_key_and_suggestion(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('rouns = 3\n')
    with pytest.raises(PrivfedError, match=r"unknown key 'rouns' \(did you mean 'rounds'\?\)"):
        load_config(path)
    path.write_text('[dp]\nnoise_multipler = 1.0\n')
    with pytest.raises(PrivfedError, match="noise_multiplier"):
        load_config(path)


def test_layering_defaults_preset_file_options(tmp_path):
    assert build_config({}).preset == "quick" and build_config({}).image_size == 64
    assert build_config({"data": "/some/folder"}).preset is None
    path = tmp_path / "c.toml"
    path.write_text('rounds = 7\nlr = 0.5\n[dp]\nmax_grad_norm = 2.0\n')
    config = build_config({"lr": 0.2, "rounds": None}, path)
    assert (config.rounds, config.lr, config.image_size, config.dp.max_grad_norm) == (7, 0.2, 64, 2.0)
    hetero = build_config({"preset": "seed-hetero"}).resolved()
    assert hetero.algorithm == "partial" and hetero.archs[1] == "mobilenet_v3_large" and hetero.common_width == 1024


@pytest.mark.parametrize(
    "changes, option",
    [
        ({"rounds": -1}, "--rounds"),
        ({"lr": 0.0}, "--lr"),
        ({"clients_per_round": 5}, "--clients-per-round"),
        ({"local_epochs": [1, 2, 3]}, "--local-epochs"),
        ({"optimizer": "sdg"}, "did you mean 'sgd'"),
        ({"observe": "11"}, "--observe"),
        ({"algorithm": "fedavg", "archs": ["simple", "mobilenet_v3_small"]}, "--algorithm partial"),
        ({"algorithm": "fedprox", "shared_width": [16, 8]}, "--shared-width"),
        ({"aggregation": "medain"}, "did you mean 'median'"),
        ({"momentum": 1.0}, "--momentum"),
    ],
)
def test_validation_names_the_option(changes, option):
    base = {"num_clients": 2, "image_size": 32}
    with pytest.raises(PrivfedError, match=option.replace("(", r"\(").replace("?", r"\?")):
        TrainConfig.from_dict({**base, **changes})


def test_round_trip_and_observe_forms():
    config = TrainConfig(num_clients=2, rounds=5, observe="all", image_size=32).resolved()
    assert config.observe == [1, 2, 3, 4, 5]
    assert TrainConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    assert TrainConfig(rounds=5, observe="none", image_size=32).observed_rounds() == []
    assert TrainConfig(rounds=5, observe="1,3,last", image_size=32).observed_rounds() == [1, 3, 5]


def test_plan_is_checked_early():
    with pytest.raises(PrivfedError, match="did you mean 'dirichlet_alpha'"):
        TrainConfig.from_dict({"image_size": 32, "plan": {"kind": "fractions", "dirichlet_alpa": 0.5}})
    with pytest.raises(PrivfedError, match="--plan"):
        TrainConfig.from_dict({"image_size": 32, "plan": "fractionz"})


def test_cosine_schedule_decays_the_round_lr_and_settings_carry_the_weighting():
    import math

    config = tiny_config(rounds=4, lr=0.2, lr_schedule="cosine")
    lrs = [config.round_lr(r) for r in range(1, 5)]
    assert lrs[0] == 0.2 and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert math.isclose(lrs[2], 0.2 * 0.5 * (1 + math.cos(math.pi * 2 / 4)))
    assert tiny_config(lr=0.2).round_lr(3) == 0.2  # constant by default
    settings = config.local_settings(3, 1)
    assert settings.lr == lrs[2] and settings.balance_classes
    assert not tiny_config(class_weighting="none").local_settings(1, 0).balance_classes
    with pytest.raises(PrivfedError, match="--lr-schedule"):
        tiny_config(lr_schedule="cosin").validate()


def test_the_quick_preset_under_sample_dp_trains_with_sgd_unless_told_otherwise():
    dp = {"level": "sample", "target_epsilon": 8.0}
    config = build_config({"dp": dp})
    assert (config.optimizer, config.lr, config.batch_size, config.rounds, config.dp.clipping) == ("sgd", 0.5, 64, 20, "per-layer")
    mine = build_config({"dp": dp, "optimizer": "adam", "rounds": 3})
    assert (mine.optimizer, mine.rounds, mine.batch_size) == ("adam", 3, 64)  # the user's options win
    assert build_config({}).optimizer == "adam"  # no DP: the preset's own
    assert build_config({"dp": {"level": "client", "noise_multiplier": 1.0}}).optimizer == "adam"  # client level: noise-free local steps
