"""Privacy accounting with Opacus' RDP accountant (Mironov 2017; Mironov et al. 2019).

One accountant lives as long as the client does, so epsilon composes over every round
instead of restarting each time a new Opacus ``PrivacyEngine`` would be made. Its history
is a JSON list so ``--resume`` restores it exactly.
"""

from __future__ import annotations

import warnings

from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from privfed.errors import PrivfedError

#: Noise multiplier treated as "infinite noise" when reporting the smallest reachable epsilon.
_HUGE_SIGMA = 1e6


def epsilon_for(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon of ``steps`` subsampled-Gaussian steps, as Opacus' RDP accountant computes it."""
    if steps <= 0:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    return _get_epsilon(accountant, delta)


def _get_epsilon(accountant: RDPAccountant, delta: float) -> float:
    # Opacus warns when the best RDP order is its largest one (tiny epsilon); harmless here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(accountant.get_epsilon(delta=delta))


def solve_noise_multiplier(
    target_epsilon: float, delta: float, sample_rate: float, steps: int, where: str
) -> float:
    """Smallest noise (to 0.01 in epsilon) whose epsilon after ``steps`` is <= target.

    ``where`` describes the plan for the error message (e.g. "3 rounds x 10 local steps").
    RDP's conversion to (epsilon, delta) has a floor that no noise can beat (it depends on
    delta and the largest RDP order); a target under it is rejected with that floor.
    """
    floor = epsilon_for(_HUGE_SIGMA, sample_rate, steps, delta)
    if target_epsilon <= floor * 1.01:
        raise PrivfedError(
            f"--target-epsilon {target_epsilon:g} cannot be reached with {where} at sample rate "
            f"{sample_rate:.4g} and delta {delta:g}: the smallest epsilon RDP accounting gives is "
            f"about {floor:.3g}; raise --target-epsilon (or --delta)"
        )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=int(steps),
                    accountant="rdp",
                    epsilon_tolerance=0.01,
                )
            )
    except ValueError:
        raise PrivfedError(
            f"--target-epsilon {target_epsilon:g} cannot be reached with {where} at sample rate "
            f"{sample_rate:.4g} and delta {delta:g}; raise --target-epsilon or train fewer rounds"
        ) from None


class PersistentAccountant:
    """An RDPAccountant plus the (sigma, q) it is stepped with, serialisable to JSON."""

    def __init__(self, noise_multiplier: float, sample_rate: float, delta: float) -> None:
        self.noise_multiplier = float(noise_multiplier)
        self.sample_rate = float(sample_rate)
        self.delta = float(delta)
        self.accountant = RDPAccountant()

    @property
    def steps(self) -> int:
        return int(sum(h[2] for h in self.accountant.history))

    def step(self) -> None:
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

    def epsilon(self) -> float:
        """Epsilon spent so far at this accountant's delta (inf when the noise is 0)."""
        if not self.accountant.history:
            return 0.0
        if self.noise_multiplier == 0:
            return float("inf")
        return _get_epsilon(self.accountant, self.delta)

    def state_dict(self) -> dict:
        return {
            "mechanism": self.accountant.mechanism(),
            "history": [[float(s), float(q), int(n)] for s, q, n in self.accountant.history],
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "delta": self.delta,
        }

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        if not isinstance(state, dict) or state.get("mechanism") != self.accountant.mechanism():
            raise PrivfedError(
                f"{source}: privacy accountant state is missing or not an RDP accountant; "
                "start a new run instead of --resume"
            )
        try:
            history = [(float(s), float(q), int(n)) for s, q, n in state["history"]]
        except (KeyError, TypeError, ValueError):
            raise PrivfedError(f"{source}: privacy accountant history is malformed; start a new run") from None
        for key in ("noise_multiplier", "sample_rate", "delta"):
            if key in state and abs(float(state[key]) - getattr(self, key)) > 1e-12 * max(1.0, abs(getattr(self, key))):
                raise PrivfedError(
                    f"{source}: the run was accounted with {key}={state[key]} but this configuration gives "
                    f"{getattr(self, key)}; resume with the same DP options"
                )
        self.accountant.history = history


class AccountedPrivacy:
    """What both DP levels share: one persistent accountant, its epsilon and its saved state."""

    level: str
    _accountant: PersistentAccountant

    def epsilon(self) -> float:
        """Epsilon spent so far (at the run's delta), over every round."""
        return self._accountant.epsilon()

    def state_dict(self) -> dict:
        return {"level": self.level, **self._accountant.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._accountant.load_state_dict(state)
