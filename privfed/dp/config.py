"""What the user asks for: the DP level, its noise and clipping, and their validation.

The CLI (``--dp-level``, ``--noise-multiplier``, ``--max-grad-norm``, ``--target-epsilon``,
``--delta``) fills a :class:`DPConfig`; ``config.json`` stores :meth:`DPConfig.to_dict`.
Every bad value raises :class:`~privfed.errors.PrivfedError` naming the option.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from privfed.errors import PrivfedError, closest

#: What each level protects, one sentence each; the CLI's ``--dp-level`` help reuses these.
LEVEL_HELP: dict[str, str] = {
    "none": "No differential privacy: updates are sent as trained.",
    "sample": (
        "Sample-level DP-SGD (Abadi et al. 2016) on each client: protects any single image "
        "(one patient scan) of a hospital's data; per-image gradients are clipped to "
        "--max-grad-norm and Gaussian noise is added at every local step."
    ),
    "client": (
        "Client-level DP (McMahan et al. 2018, DP-FedAvg): protects a whole hospital's "
        "contribution (all its images at once); each client's update is clipped to "
        "--max-grad-norm and Gaussian noise is added before it is sent."
    ),
}

LEVELS: tuple[str, ...] = tuple(LEVEL_HELP)

#: Which datasets count as neighbours, i.e. what the epsilon is a promise about.
NEIGHBOURING_HELP: dict[str, str] = {
    "replace": (
        "replacing one record by another (one hospital's data by any other): the client level's "
        "default, since every client's clipped update is sent and seen, so a replaced hospital moves "
        "its message by up to 2 x --max-grad-norm"
    ),
    "add-remove": (
        "adding or removing one record: the sample level's relation (Opacus' accountant for Poisson "
        "subsampling); for the client level it assumes a hospital's message can be absent, and gives "
        "a smaller epsilon than replace for the same noise"
    ),
}
NEIGHBOURING: tuple[str, ...] = tuple(NEIGHBOURING_HELP)


CLIPPINGS = ("flat", "per-layer")


def default_neighbouring(level: str) -> str:
    return "replace" if level == "client" else "add-remove"

#: Default delta is min(DEFAULT_DELTA, 1/n), n = records protected (images or clients).
DEFAULT_DELTA = 1e-5


def default_delta(n: int) -> float:
    """delta must be well below 1/n, else releasing one record outright would satisfy it."""
    return min(DEFAULT_DELTA, 1.0 / max(int(n), 1))


def _finite(value: float, option: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise PrivfedError(f"{option} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise PrivfedError(f"{option} must be a finite number, got {value}")
    return value


@dataclass
class DPConfig:
    """User-facing DP settings; ``noise_multiplier=None`` with ``target_epsilon`` means solved."""

    level: str = "none"
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    target_epsilon: float | None = None
    delta: float | None = None
    #: None: the level's own (see NEIGHBOURING_HELP); stored resolved in config.json
    neighbouring: str | None = None
    #: sample level: "flat" clips each image's whole gradient to C; "per-layer" each layer's
    #: part to C / sqrt(layers) (same total bound, same noise, same epsilon)
    clipping: str = "flat"

    @property
    def relation(self) -> str:
        """The neighbouring relation the epsilon holds for."""
        return self.neighbouring or default_neighbouring(self.level)

    @property
    def sensitivity_factor(self) -> float:
        """How many clipping norms one neighbour moves what is released: 2 for replace at the client level."""
        return 2.0 if self.level == "client" and self.relation == "replace" else 1.0

    @property
    def enabled(self) -> bool:
        return self.level != "none"

    def validate(self) -> None:
        """Raise PrivfedError naming the option for any impossible value."""
        if self.level not in LEVELS:
            raise PrivfedError(
                f"unknown --dp-level {self.level!r}{closest(str(self.level), LEVELS)}; choose one of: {', '.join(LEVELS)}"
            )
        if self.noise_multiplier is not None and _finite(self.noise_multiplier, "--noise-multiplier") < 0:
            raise PrivfedError(
                f"--noise-multiplier must be >= 0 (it is the noise std in units of --max-grad-norm), got {self.noise_multiplier}"
            )
        if _finite(self.max_grad_norm, "--max-grad-norm") <= 0:
            raise PrivfedError(f"--max-grad-norm must be > 0 (the clipping bound), got {self.max_grad_norm}")
        if self.target_epsilon is not None and _finite(self.target_epsilon, "--target-epsilon") <= 0:
            raise PrivfedError(f"--target-epsilon must be > 0, got {self.target_epsilon}")
        if self.delta is not None:
            delta = _finite(self.delta, "--delta")
            if not 0 < delta < 1:
                raise PrivfedError(
                    f"--delta must be strictly between 0 and 1 (use well below 1/number of records), got {self.delta}"
                )
        if self.neighbouring is not None and self.neighbouring not in NEIGHBOURING:
            raise PrivfedError(
                f"unknown --neighbouring {self.neighbouring!r}{closest(str(self.neighbouring), NEIGHBOURING)}; "
                f"choose one of: {', '.join(NEIGHBOURING)}"
            )
        if self.clipping not in CLIPPINGS:
            raise PrivfedError(
                f"unknown --clipping {self.clipping!r}{closest(str(self.clipping), CLIPPINGS)}; choose one of: {', '.join(CLIPPINGS)}"
            )
        if self.level == "sample" and self.relation == "replace":
            raise PrivfedError(
                "--neighbouring replace is for --dp-level client; sample-level DP-SGD is accounted for adding or "
                "removing one image (Poisson subsampling), use --neighbouring add-remove or leave it out"
            )
        if self.enabled:
            if self.noise_multiplier is not None and self.target_epsilon is not None:
                raise PrivfedError(
                    "--noise-multiplier and --target-epsilon are mutually exclusive: give one "
                    "(the noise is solved from --target-epsilon)"
                )
            if self.noise_multiplier is None and self.target_epsilon is None:
                raise PrivfedError(
                    f"--dp-level {self.level} needs --noise-multiplier or --target-epsilon"
                )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> DPConfig:
        data = dict(data or {})
        known = {k: data[k] for k in ("level", "noise_multiplier", "max_grad_norm", "target_epsilon", "delta", "neighbouring",
                                      "clipping") if k in data}
        return cls(**known)
