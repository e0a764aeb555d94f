"""TrainConfig: every setting of a training run, typed, validated, and stored in config.json.

Layering (lowest first): dataclass defaults, ``--preset``, ``--config file.toml``, explicit
CLI options. :meth:`TrainConfig.resolved` fills every derived default (per-client lists,
``common_width``, ``clients_per_round``, observed rounds) so config.json is complete.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from privfed.errors import PrivfedError, closest

from privfed.dp import DPConfig
from privfed.federated.strategy import LocalSettings

#: Presets: named bundles of options; explicit options override them.
PRESETS: dict[str, dict[str, Any]] = {
    # The default study: the embedded data at its native 64x64, settings measured to converge
    # (FedAvg within 1-2 points of the centralized baseline on the same split, ~25 s on 2 cores).
    "quick": {
        "data": "embedded", "image_size": 64, "num_clients": 4, "plan": "fractions", "archs": ["simple"],
        "rounds": 10, "local_epochs": 2, "batch_size": 16, "lr": 0.001, "optimizer": "adam", "lr_schedule": "cosine",
        "observe": "first,last",
    },
    # The seed's experiment at its real size, with the optimiser that converges in the quick study
    # (Adam 1e-3, cosine over rounds; SGD 0.01 left FedAvg near chance and MobileNetV3 constant).
    "seed-same-arch": {
        "algorithm": "fedavg", "num_clients": 4, "archs": ["simple"] * 4, "plan": "seed", "image_size": 224,
        "rounds": 10, "local_epochs": 1, "batch_size": 32, "lr": 0.001, "optimizer": "adam", "lr_schedule": "cosine",
    },
    "seed-hetero": {
        "algorithm": "partial", "num_clients": 4, "plan": "seed", "image_size": 224, "rounds": 10,
        "archs": ["simple", "mobilenet_v3_large", "mobilenet_v3_small", "densenet121"],
        "local_epochs": 1, "batch_size": 32, "lr": 0.001, "optimizer": "adam", "lr_schedule": "cosine",
    },
}

#: What a preset changes under sample-level DP (options the user gives still win). Adam divides each
#: coordinate's step by its own recent gradient size, so under DP-SGD, where the 2M weights of
#: the fc and shared layers receive almost pure noise, every weight moves a full step at
#: random each iteration: the quick study's DP models stayed at one class for rounds and
#: ended at 0.75-0.80 accuracy (epsilon 8) whatever the batch or clipping. Plain SGD moves
#: them by the noise's real size, so the signal accumulates: 0.82-0.86 at 10 rounds of 2
#: epochs, 0.86-0.87 at 20 rounds of 1 epoch (same steps, twice the averaging of the clients'
#: independent noise; two seeds each, bench/dp_utility.py).
PRESETS_UNDER_DP: dict[str, dict[str, Any]] = {
    "quick": {"optimizer": "sgd", "momentum": 0.9, "lr": 0.5, "batch_size": 64, "rounds": 20, "local_epochs": 1,
              "dp": {"clipping": "per-layer"}},
}

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("sgd", "adam")
#: --lr-schedule: how the local learning rate changes over rounds (the server sets it each round)
LR_SCHEDULES = ("constant", "cosine")
#: --class-weighting: "balanced" weights each image's loss by n / (classes x n_class) of its party
CLASS_WEIGHTINGS = ("balanced", "none")
#: --precision: "bf16" runs the forward pass of non-private training under bfloat16 autocast
PRECISIONS = ("fp32", "bf16")
#: keys config.json carries beside the TrainConfig fields
META_KEYS = ("privfed_version", "format_version", "command")


@dataclass
class TrainConfig:
    algorithm: str = "fedavg"
    preset: str | None = None
    num_clients: int = 4
    archs: list[str] = field(default_factory=lambda: ["simple"])
    server_arch: str = "simple"
    shared_width: int | list[int] = 1024
    common_width: int | None = None
    clients_per_round: int | None = None
    rounds: int = 10
    local_epochs: int | list[int] = 1
    batch_size: int = 32
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    lr_schedule: str = "constant"
    class_weighting: str = "balanced"
    mu: float = 0.01
    aggregation: str = "mean"
    trim_fraction: float = 0.1
    server_epochs: int = 1
    image_size: int = 224
    num_classes: int = 2
    classes: list[str] | None = None
    data: str = "embedded"
    plan: Any = "fractions"
    seed: int = 0
    observe: Any = "first,last"
    device: str = "auto"
    eval_batch_size: int = 256
    #: test-set evaluation in every this many rounds, and always in the last: at the seed's size
    #: on CPU, evaluating five models on the test set took as long as training them
    #: (docs/results.md); the training itself is the same for any value
    eval_every: int = 1
    #: forward pass of non-private training in bfloat16 (autocast; weights, optimiser and
    #: loss stay fp32): faster on GPUs and bf16-capable CPUs for ``simple`` (bench/precision.py)
    precision: str = "fp32"
    #: NHWC activations and conv weights in non-private training (same training, other
    #: memory layout; 1.1-1.7x faster on CPU for every architecture, bench/precision.py).
    #: None: on for non-private runs, off under DP-SGD (resolved into config.json)
    channels_last: bool | None = None
    dp: DPConfig = field(default_factory=DPConfig)

    # ---- per-client views -------------------------------------------------------------
    def arch_of(self, k: int) -> str:
        return self.archs[k] if len(self.archs) > 1 else self.archs[0]

    def width_of(self, k: int) -> int:
        return _per_client(self.shared_width, k)

    def epochs_of(self, k: int) -> int:
        return _per_client(self.local_epochs, k)

    def evaluates(self, server_round: int) -> bool:
        """Whether round ``server_round`` (1-based) measures its models on the test set."""
        return server_round % self.eval_every == 0 or server_round >= self.rounds

    def round_lr(self, server_round: int) -> float:
        """The local learning rate of ``server_round`` (1-based) under ``lr_schedule``.

        "cosine" decays from ``lr`` in round 1 towards 0 over the run (Loshchilov & Hutter
        2017, applied per round as the server would): the last rounds move the global model
        little, so its final accuracy does not depend on where a noisy last step landed.
        """
        if self.lr_schedule == "cosine" and self.rounds > 1:
            return self.lr * 0.5 * (1 + math.cos(math.pi * (server_round - 1) / self.rounds))
        return self.lr

    def local_settings(self, server_round: int, k: int | None, epochs: int | None = None) -> LocalSettings:
        """What party ``k`` (None: the server or the pooled baseline) is told to do in a round.

        Strategies then override their one field (FedProx its ``mu``) in ``configure_train``.
        """
        return LocalSettings(
            epochs=epochs if epochs is not None else self.epochs_of(k or 0), batch_size=self.batch_size,
            lr=self.round_lr(server_round), optimizer=self.optimizer, momentum=self.momentum,
            balance_classes=self.class_weighting == "balanced", precision=self.precision,
            channels_last=self.channels_last if self.channels_last is not None else self.dp.level != "sample",
        )

    # ---- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build and validate; unknown keys raise PrivfedError with the closest valid name."""
        if not isinstance(data, dict):
            raise PrivfedError(f"{source}: expected a table of TrainConfig fields, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        values = {}
        for key, value in data.items():
            if key in META_KEYS:
                continue
            if key not in names:
                hint = closest(str(key), names)
                if str(key).startswith(("dp_", "dp.")) and str(key)[3:] in {f.name for f in fields(DPConfig)}:
                    hint = f" (did you mean {str(key)[3:]!r} in the [dp] table?)"
                raise PrivfedError(f"{source}: unknown key {key!r}{hint}; valid keys: {', '.join(sorted(names))}")
            values[key] = value
        if isinstance(values.get("dp"), dict):
            dp_names = {f.name for f in fields(DPConfig)}
            for key in values["dp"]:
                if key not in dp_names:
                    raise PrivfedError(f"{source}: unknown key {'dp.' + str(key)!r}{closest(str(key), dp_names)}; valid: {', '.join(sorted(dp_names))}")
            values["dp"] = DPConfig(**values["dp"])
        elif "dp" in values and not isinstance(values["dp"], DPConfig):
            raise PrivfedError(f"{source}: dp must be a table of {', '.join(f.name for f in fields(DPConfig))}, got {values['dp']!r}")
        try:
            config = cls(**values)
        except TypeError as exc:  # pragma: no cover - guarded by the key check above
            raise PrivfedError(f"{source}: {exc}") from None
        config.validate()
        return config

    # ---- validation and resolution -----------------------------------------------------
    def validate(self) -> None:
        from privfed.federated.aggregation import AGGREGATIONS
        from privfed.federated.strategy import ALGORITHMS
        from privfed.models import MIN_IMAGE_SIZE, MODEL_BUILDERS

        self._check_types()
        strategy = ALGORITHMS.get(self.algorithm)
        AGGREGATIONS.get(self.aggregation)
        _positive_int("--num-clients", self.num_clients)
        _positive_int("--rounds", self.rounds)
        _positive_int("--batch-size", self.batch_size)
        _positive_int("--image-size", self.image_size)
        _positive_int("--eval-batch-size", self.eval_batch_size)
        _positive_int("--eval-every", self.eval_every)
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise PrivfedError(f"num_classes must be an integer >= 2, got {self.num_classes!r}")
        if not _is_finite(self.lr) or self.lr <= 0:
            raise PrivfedError(f"--lr must be a positive number, got {self.lr!r}")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise PrivfedError(f"--momentum must be in [0, 1), got {self.momentum!r}")
        if not _is_finite(self.mu) or self.mu < 0:
            raise PrivfedError(f"--mu must be >= 0, got {self.mu!r}")
        if not _is_number(self.trim_fraction) or not 0 <= self.trim_fraction < 0.5:
            raise PrivfedError(f"--trim-fraction must be in [0, 0.5), got {self.trim_fraction!r}")
        if not isinstance(self.server_epochs, int) or self.server_epochs < 0:
            raise PrivfedError(f"--server-epochs must be an integer >= 0, got {self.server_epochs!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise PrivfedError(f"--seed must be an integer >= 0, got {self.seed!r}")
        if self.optimizer not in OPTIMIZERS:
            raise PrivfedError(f"--optimizer: unknown optimizer {self.optimizer!r}{closest(str(self.optimizer), OPTIMIZERS)}; choose sgd or adam")
        if self.lr_schedule not in LR_SCHEDULES:
            raise PrivfedError(f"--lr-schedule: unknown schedule {self.lr_schedule!r}{closest(str(self.lr_schedule), LR_SCHEDULES)}; choose one of {', '.join(LR_SCHEDULES)}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise PrivfedError(f"--class-weighting: unknown weighting {self.class_weighting!r}{closest(str(self.class_weighting), CLASS_WEIGHTINGS)}; choose one of {', '.join(CLASS_WEIGHTINGS)}")
        if self.precision not in PRECISIONS:
            raise PrivfedError(f"--precision: unknown precision {self.precision!r}{closest(str(self.precision), PRECISIONS)}; choose one of {', '.join(PRECISIONS)}")
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            raise PrivfedError(f"--channels-last must be true or false, got {self.channels_last!r}")
        if self.dp.level == "sample" and (self.precision != "fp32" or self.channels_last is True):
            raise PrivfedError(
                "--precision bf16 / --channels-last with --dp-level sample: DP-SGD's per-sample gradients and "
                "clipping run in fp32 and the default layout; drop --precision/--channels-last for a DP run"
            )
        if self.device not in DEVICES:
            raise PrivfedError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.preset is not None and self.preset not in PRESETS:
            raise PrivfedError(f"--preset: unknown preset {self.preset!r}{closest(str(self.preset), PRESETS)}; choose one of {', '.join(PRESETS)}")
        if self.clients_per_round is not None:
            if not isinstance(self.clients_per_round, int) or not 1 <= self.clients_per_round <= self.num_clients:
                raise PrivfedError(
                    f"--clients-per-round must be between 1 and --num-clients ({self.num_clients}), got {self.clients_per_round!r}"
                )
        archs = [self.archs] if isinstance(self.archs, str) else list(self.archs)
        if len(archs) not in (1, self.num_clients):
            raise PrivfedError(f"--arch: give one architecture or one per client ({self.num_clients}), got {len(archs)}")
        for arch in [*archs, self.server_arch]:
            MODEL_BUILDERS.get(arch)
            if self.image_size < MIN_IMAGE_SIZE[arch]:
                raise PrivfedError(f"--image-size {self.image_size} is too small for architecture {arch!r}; use at least {MIN_IMAGE_SIZE[arch]}")
        _per_client_list("--local-epochs", self.local_epochs, self.num_clients)
        widths = _per_client_list("--shared-width", self.shared_width, self.num_clients)
        if self.common_width is not None:
            _positive_int("--common-width", self.common_width)
        if strategy.kind in ("full-model", "centralized"):
            if len(set(archs)) > 1:
                raise PrivfedError(
                    f"--algorithm {self.algorithm} averages whole models, so every client needs the same architecture "
                    f"(got {', '.join(archs)}); use --algorithm partial for mixed architectures, or one --arch"
                )
            if len(set(widths)) > 1:
                raise PrivfedError(
                    f"--algorithm {self.algorithm} averages whole models, so --shared-width must be the same for every "
                    f"client (got {widths}); use --algorithm partial for mixed widths"
                )
        self.observed_rounds()
        split_plan(self.plan)
        if hasattr(self.dp, "validate"):
            self.dp.validate()

    def _check_types(self) -> None:
        """Types first, so every later check compares like with like (a TOML file can hold anything)."""
        for option, value in (("--algorithm", self.algorithm), ("--server-arch", self.server_arch),
                              ("--optimizer", self.optimizer), ("--aggregation", self.aggregation),
                              ("--lr-schedule", self.lr_schedule), ("--class-weighting", self.class_weighting),
                              ("--data", self.data), ("--device", self.device),
                              ("--precision", self.precision)):
            if not isinstance(value, str):
                raise PrivfedError(f"{option} must be a string, got {value!r}")
        if self.preset is not None and not isinstance(self.preset, str):
            raise PrivfedError(f"--preset must be a preset name, got {self.preset!r}")
        archs = [self.archs] if isinstance(self.archs, str) else self.archs
        if not isinstance(archs, (list, tuple)) or not archs or not all(isinstance(a, str) for a in archs):
            raise PrivfedError(f"--arch must be an architecture name or a list of names, got {self.archs!r}")
        if self.classes is not None and (
            not isinstance(self.classes, (list, tuple)) or not all(isinstance(c, str) for c in self.classes)
        ):
            raise PrivfedError(f"classes must be a list of class names, got {self.classes!r}")
        observe = self.observe if isinstance(self.observe, (list, tuple)) else [self.observe]
        if not all(isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in observe):
            raise PrivfedError(f"--observe: expected 'first,last', 'all', 'none' or round numbers, got {self.observe!r}")
        if not isinstance(self.dp, DPConfig):
            raise PrivfedError(f"dp must be a table of {', '.join(f.name for f in fields(DPConfig))}, got {self.dp!r}")
        dp = self.dp
        if not isinstance(dp.level, str):
            raise PrivfedError(f"--dp-level must be a string, got {dp.level!r}")
        for option, value, optional in (("--noise-multiplier", dp.noise_multiplier, True),
                                        ("--max-grad-norm", dp.max_grad_norm, False),
                                        ("--target-epsilon", dp.target_epsilon, True), ("--delta", dp.delta, True)):
            if (value is not None or not optional) and not _is_finite(value):
                raise PrivfedError(f"{option} must be a finite number, got {value!r}")

    def observed_rounds(self) -> list[int]:
        """``observe`` as a sorted list of round numbers (1-based)."""
        spec = self.observe
        if isinstance(spec, (list, tuple)):
            items = [str(v) for v in spec]
        else:
            items = [s.strip() for s in str(spec).split(",") if s.strip()]
        rounds: set[int] = set()
        for item in items:
            if item == "all":
                rounds.update(range(1, self.rounds + 1))
            elif item == "none":
                continue
            elif item == "first":
                rounds.add(1)
            elif item == "last":
                rounds.add(self.rounds)
            else:
                try:
                    number = int(item)
                except ValueError:
                    raise PrivfedError(
                        f"--observe: {item!r} is not a round; use 'first,last', 'all', 'none' or round numbers like '1,3,5'"
                    ) from None
                if not 1 <= number <= self.rounds:
                    raise PrivfedError(f"--observe: round {number} is outside 1..{self.rounds} (--rounds)")
                rounds.add(number)
        return sorted(rounds)

    def resolved(self) -> TrainConfig:
        """A validated copy with every derived default filled in (what config.json stores)."""
        self.validate()
        n = self.num_clients
        archs = [self.archs] if isinstance(self.archs, str) else list(self.archs)
        widths = _per_client_list("--shared-width", self.shared_width, n)
        epochs = _per_client_list("--local-epochs", self.local_epochs, n)
        return dataclasses.replace(
            self,
            archs=archs * n if len(archs) == 1 else archs,
            shared_width=widths,
            local_epochs=epochs,
            common_width=self.common_width if self.common_width is not None else max(widths),
            clients_per_round=self.clients_per_round if self.clients_per_round is not None else n,
            observe=self.observed_rounds(),
            dp=dataclasses.replace(self.dp, neighbouring=self.dp.relation if self.dp.enabled else self.dp.neighbouring),
            data=_absolute_data(self.data),
            channels_last=self.channels_last if self.channels_last is not None else self.dp.level != "sample",
        )


def _absolute_data(data: str) -> str:
    """Store data paths absolute, so attacks run from another folder find the same images."""
    if data in (None, "", "embedded"):
        return "embedded"
    path = Path(data).expanduser()
    return str(path.resolve()) if path.exists() else str(data)


def load_config(path: str | Path) -> TrainConfig:
    """A TrainConfig from a TOML file (keys = field names, ``[dp]`` table) or a run's config.json."""
    return TrainConfig.from_dict(read_config_file(path), source=str(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PrivfedError(f"--config {path}: file not found")
    if path.suffix == ".json":
        from privfed.io import read_json

        data = read_json(path)
    else:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PrivfedError(f"--config {path}: not valid TOML ({exc})") from None
    if not isinstance(data, dict):
        raise PrivfedError(f"--config {path}: expected a table of TrainConfig fields")
    return data


def build_config(options: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """defaults < preset < config file < options (options with value None are ignored)."""
    options = {k: v for k, v in options.items() if v is not None}
    file_values = read_config_file(config_file) if config_file else {}
    source = str(config_file) if config_file else "options"
    preset = options.get("preset") or file_values.get("preset")
    if preset is None and "data" not in options and "data" not in file_values:
        preset = "quick"
    merged: dict[str, Any] = {}
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise PrivfedError(f"--preset: unknown preset {preset!r}{closest(str(preset), PRESETS)}; choose one of {', '.join(PRESETS)}")
        merged.update(PRESETS[preset])
        merged["preset"] = preset
    dp = file_values.pop("dp", None) or {}
    if not isinstance(dp, dict):
        raise PrivfedError(f"{source}: dp must be a table of {', '.join(f.name for f in fields(DPConfig))}, got {dp!r}")
    dp = dict(dp)
    dp.update(options.get("dp", {}) or {})
    if preset in PRESETS_UNDER_DP and dp.get("level") == "sample":
        given = set(file_values) | set(options)
        recipe = PRESETS_UNDER_DP[preset]
        merged.update({key: value for key, value in recipe.items() if key != "dp" and key not in given})
        dp = {**{key: value for key, value in recipe.get("dp", {}).items()}, **dp}
    merged.update(file_values)
    options.pop("dp", None)
    merged.update(options)
    if dp:
        merged["dp"] = dp
    return TrainConfig.from_dict(merged, source=source)


def split_plan(plan: Any) -> Any:
    """``plan`` (a plan kind such as "fractions", or a table of SplitPlan fields) as a SplitPlan."""
    from privfed.data.split import SplitPlan

    if isinstance(plan, str):
        return SplitPlan(kind=plan)
    if isinstance(plan, dict):
        known = {f.name for f in fields(SplitPlan)}
        for key in plan:
            if key not in known:
                raise PrivfedError(f"plan: unknown key {key!r}{closest(str(key), known)}; valid keys: {', '.join(sorted(known))}")
        if not isinstance(plan.get("kind", "seed"), str):
            raise PrivfedError(f"plan.kind must be a plan name, got {plan['kind']!r}")
        for key, value in plan.items():
            if key != "kind" and value is not None and not _is_finite(value):
                raise PrivfedError(f"plan.{key} must be a finite number, got {value!r}")
        return SplitPlan.from_dict(plan)
    if dataclasses.is_dataclass(plan):
        return plan
    raise PrivfedError(f"--plan: expected a plan name or a table of plan fields, got {plan!r}")


# ---- helpers ----------------------------------------------------------------------------
def _per_client(value: int | list[int], k: int) -> int:
    if isinstance(value, (list, tuple)):
        return int(value[k] if len(value) > 1 else value[0])
    return int(value)


def _per_client_list(option: str, value: Any, n: int) -> list[int]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) not in (1, n):
        raise PrivfedError(f"{option}: give one value or one per client ({n}), got {len(values)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PrivfedError(f"{option}: every value must be a positive integer, got {v!r}")
    return [int(v) for v in values] * (n if len(values) == 1 else 1)


def _positive_int(option: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PrivfedError(f"{option} must be a positive integer, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """A real number that config.json can store (NaN and inf would come back as null)."""
    return _is_number(value) and math.isfinite(value)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
