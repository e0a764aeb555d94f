"""A replay applies the run's real DP noise, also when the run solved it from --target-epsilon."""

from __future__ import annotations

import pytest

from attacks.inversion.simulate import DPMechanism
from privfed.errors import PrivfedError


def test_noise_solved_from_a_target_epsilon_comes_from_the_summary():
    config = {"level": "sample", "noise_multiplier": None, "target_epsilon": 3.0, "max_grad_norm": 0.5}
    mechanism = DPMechanism.from_config(config, solved_noise_multiplier=1.7)
    assert (mechanism.level, mechanism.noise_multiplier, mechanism.max_grad_norm) == ("sample", 1.7, 0.5)
    # an explicit noise multiplier is the run's own: the summary cannot override it
    assert DPMechanism.from_config({**config, "noise_multiplier": 0.8}, 1.7).noise_multiplier == 0.8
    with pytest.raises(PrivfedError, match="--resume"):  # never silently replay without noise
        DPMechanism.from_config(config)
    assert DPMechanism.from_config({"level": "none"}).level == "none"
