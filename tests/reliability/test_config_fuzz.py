"""Random configs thrown at the loader: each is accepted or refused with a PrivfedError, nothing else.

Property-based (hypothesis): every TrainConfig field, the nested ``dp`` and ``plan`` tables,
random types (ints, floats incl. NaN/inf, strings, bools, lists, tables) and random TOML
text. An accepted config must also resolve and survive the config.json round trip that
``--resume`` relies on; a refusal must be a one-line PrivfedError naming what is wrong.
"""

from __future__ import annotations

import json
import math

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privfed.errors import PrivfedError
from privfed.federated import TrainConfig, build_config, load_config
from privfed.io import dumps_json

FIELDS = [
    "algorithm", "preset", "num_clients", "archs", "server_arch", "shared_width", "common_width", "clients_per_round",
    "rounds", "local_epochs", "batch_size", "lr", "optimizer", "momentum", "mu", "aggregation", "trim_fraction",
    "server_epochs", "image_size", "num_classes", "classes", "data", "plan", "seed", "observe", "device",
    "eval_batch_size", "dp",
]

scalars = st.one_of(
    st.integers(min_value=-5, max_value=70),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, -0.1, 1e-9, 0.25]),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["fedavg", "partial", "simple", "sgd", "adam", "mean", "median", "all", "none", "first,last",
                     "1,2", "cpu", "auto", "embedded", "quick", "sample", "client", "sizes", "fractions", "seed"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)

#: plausible values per field, so that many configs get past the first checks
PLAUSIBLE = {
    "algorithm": st.sampled_from(["fedavg", "fedprox", "fednova", "partial", "local", "centralized", "fedvag"]),
    "num_clients": st.integers(-1, 5),
    "archs": st.one_of(st.just(["simple"]), st.lists(st.sampled_from(["simple", "mobilenet_v3_small", "densenet121", "x"]), max_size=5)),
    "server_arch": st.sampled_from(["simple", "mobilenet_v3_small", "nope"]),
    "shared_width": st.one_of(st.integers(-2, 64), st.lists(st.integers(-1, 32), max_size=5)),
    "common_width": st.one_of(st.none(), st.integers(-1, 64)),
    "clients_per_round": st.one_of(st.none(), st.integers(-1, 6)),
    "rounds": st.integers(-2, 5),
    "local_epochs": st.one_of(st.integers(-1, 3), st.lists(st.integers(0, 3), max_size=5)),
    "batch_size": st.integers(-1, 16),
    "optimizer": st.sampled_from(["sgd", "adam", "sdg"]),
    "aggregation": st.sampled_from(["mean", "median", "trimmed_mean", "medain"]),
    "server_epochs": st.integers(-1, 2),
    "num_classes": st.integers(0, 3),
    "classes": st.one_of(st.none(), st.just(["normal", "tumor"]), st.lists(st.text(max_size=4), max_size=3)),
    "data": st.sampled_from(["embedded", "/no/such/folder", ""]),
    "seed": st.integers(-1, 2**40),
    "device": st.sampled_from(["auto", "cpu", "cuda", "tpu"]),
    "preset": st.sampled_from([None, "quick", "seed-hetero", "quik"]),
    "eval_batch_size": st.integers(-1, 300),
    "lr": st.one_of(st.floats(-1, 2), st.sampled_from([math.nan, math.inf, 0.0])),
    "momentum": st.floats(allow_nan=True),
    "mu": st.floats(allow_nan=True),
    "trim_fraction": st.floats(allow_nan=True),
    "image_size": st.integers(-1, 300),
    "observe": st.one_of(st.sampled_from(["all", "none", "first,last", "1,x", "0", "2"]), st.lists(st.integers(-1, 6), max_size=3)),
    "plan": st.one_of(
        st.sampled_from(["fractions", "sizes", "seed", "bogus"]),
        st.fixed_dictionaries({"kind": st.sampled_from(["fractions", "sizes", "seed"])},
                              optional={"client_size": values, "server_size": st.integers(-1, 9), "test_size": values,
                                        "clients_fraction": st.floats(allow_nan=True), "server_fraction": values,
                                        "test_fraction": st.floats(-1, 2), "dirichlet_alpha": values, "kind2": values}),
    ),
    "dp": st.fixed_dictionaries({}, optional={
        "level": st.sampled_from(["none", "sample", "client", "smaple"]) | values,
        "noise_multiplier": st.one_of(st.none(), st.floats(allow_nan=True), values),
        "max_grad_norm": st.floats(allow_nan=True) | values,
        "target_epsilon": st.one_of(st.none(), st.floats(allow_nan=True)),
        "delta": st.one_of(st.none(), st.floats(allow_nan=True), values),
        "epsilon": values,
    }) | values,
}


def field_value(name: str) -> st.SearchStrategy:
    """Mostly plausible values (so checks deep inside are reached), sometimes anything at all."""
    return st.one_of(PLAUSIBLE[name], PLAUSIBLE[name], PLAUSIBLE[name], values) if name in PLAUSIBLE else values


def _assemble(fields: dict, extra: tuple[str | None, object]) -> dict:
    name, value = extra
    data = {"image_size": 32, "num_clients": 2, **fields}  # small defaults, so many configs can be accepted
    if name is not None:
        data[name] = value
    return data


#: a rare extra key: unknown names (misspelt, empty) and the metadata keys config.json carries
extra_key = st.tuples(st.sampled_from([None] * 8 + ["rouns", "", "dp_level", "format_version", "command"]), values)
configs = st.builds(_assemble, st.fixed_dictionaries({}, optional={name: field_value(name) for name in FIELDS}), extra_key)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def assert_valid(c: TrainConfig) -> None:
    """What an accepted config must satisfy, written independently of TrainConfig.validate.

    Without it a fuzz test passes whether bad input is refused or silently accepted.
    """
    from privfed.dp.config import LEVELS, NEIGHBOURING
    from privfed.federated import AGGREGATIONS, ALGORITHMS
    from privfed.federated.config import CLASS_WEIGHTINGS, DEVICES, LR_SCHEDULES, OPTIMIZERS
    from privfed.models import MIN_IMAGE_SIZE

    for name in ("num_clients", "rounds", "batch_size", "image_size", "eval_batch_size", "clients_per_round"):
        assert _count(getattr(c, name)), (name, getattr(c, name))
    assert c.clients_per_round <= c.num_clients
    assert _number(c.lr) and c.lr > 0 and _number(c.momentum) and 0 <= c.momentum < 1
    assert _number(c.mu) and c.mu >= 0 and _number(c.trim_fraction) and 0 <= c.trim_fraction < 0.5
    assert isinstance(c.seed, int) and not isinstance(c.seed, bool) and c.seed >= 0
    assert isinstance(c.server_epochs, int) and not isinstance(c.server_epochs, bool) and c.server_epochs >= 0
    assert c.algorithm in ALGORITHMS.names() and c.aggregation in AGGREGATIONS.names()
    assert c.optimizer in OPTIMIZERS and c.device in DEVICES and c.lr_schedule in LR_SCHEDULES
    assert c.class_weighting in CLASS_WEIGHTINGS and isinstance(c.num_classes, int) and c.num_classes >= 2
    assert len(c.archs) == c.num_clients and all(c.image_size >= MIN_IMAGE_SIZE[a] for a in [*c.archs, c.server_arch])
    assert len(c.local_epochs) == len(c.shared_width) == c.num_clients
    assert all(_count(v) for v in [*c.local_epochs, *c.shared_width, c.common_width])
    assert all(isinstance(r, int) and 1 <= r <= c.rounds for r in c.observe)
    dp = c.dp
    assert dp.level in LEVELS and _number(dp.max_grad_norm) and dp.max_grad_norm > 0
    if dp.level != "none":
        assert (dp.noise_multiplier is None) != (dp.target_epsilon is None)
        assert dp.noise_multiplier is None or (_number(dp.noise_multiplier) and dp.noise_multiplier >= 0)
        assert dp.target_epsilon is None or (_number(dp.target_epsilon) and dp.target_epsilon > 0)
        assert dp.neighbouring in NEIGHBOURING
    assert dp.delta is None or (_number(dp.delta) and 0 < dp.delta < 1)


def check(load) -> None:
    """``load()`` gives a config or raises PrivfedError; an accepted config is valid, resolves and round-trips."""
    try:
        config = load()
    except PrivfedError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message
        return
    try:
        resolved = config.resolved()
    except PrivfedError:
        return  # a check that needs every field at once may still refuse it here
    assert_valid(resolved)
    stored = json.loads(dumps_json(resolved.to_dict()))
    again = TrainConfig.from_dict(stored, source="config.json")
    assert again.resolved().to_dict() == stored


@pytest.mark.parametrize("bad", [{"lr": math.nan}, {"lr": -0.1}, {"momentum": 1.0}, {"rounds": 0}, {"rounds": True},
                                 {"observe": "7"}, {"image_size": 8}, {"dp": {"level": "sample"}},
                                 {"dp": {"level": "client", "noise_multiplier": 1.0, "target_epsilon": 3.0}},
                                 {"dp": {"level": "sample", "noise_multiplier": 1.0, "delta": 1.5}},
                                 {"class_weighting": "balance"}, {"lr_schedule": 3}])
def test_known_bad_values_are_refused(bad):
    """The fuzzers' oracle (assert_valid) and validate agree on hand-picked bad values."""
    with pytest.raises(PrivfedError):
        TrainConfig.from_dict({"image_size": 32, "num_clients": 2, "rounds": 5, **bad}, source="bad.toml").resolved()


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FUZZ
@given(configs)
def test_from_dict_accepts_or_refuses_with_privfed_error(data):
    check(lambda: TrainConfig.from_dict(data, source="fuzz.toml"))


@FUZZ
@given(st.one_of(values, st.lists(values, max_size=3)))
def test_top_level_not_a_table_is_refused(data):
    check(lambda: TrainConfig.from_dict(data, source="fuzz.toml"))


# ---- the same through a TOML file, as ``--config`` reads it ------------------------------
def toml_value(value) -> str | None:
    """A TOML literal for ``value`` (None has none: such keys and items are left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(v for v in map(toml_value, value) if v is not None) + "]"
    items = [f"{json.dumps(str(k), ensure_ascii=False)} = {v}" for k, v in ((k, toml_value(v)) for k, v in value.items()) if v is not None]
    return "{" + ", ".join(items) + "}"


def to_toml(data: dict) -> str:
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif (text := toml_value(value)) is not None:
            lines.append(f"{json.dumps(key, ensure_ascii=False)} = {text}")
    for key, table in tables:
        lines.append(f"[{json.dumps(key, ensure_ascii=False)}]")
        lines += [f"{json.dumps(str(k), ensure_ascii=False)} = {t}" for k, v in table.items() if (t := toml_value(v)) is not None]
    return "\n".join(lines) + "\n"


def test_toml_writer_round_trips():
    import tomllib

    data = {"rounds": 3, "lr": 0.5, "archs": ["simple", "simple"], "observe": [1, 2], "dp": {"level": "sample", "delta": 1e-05},
            "plan": {"kind": "sizes", "client_size": 4}, "ok": True, "text": 'a "quoted" \\ name'}
    assert tomllib.loads(to_toml(data)) == data


@FUZZ
@given(configs)
def test_load_config_on_random_toml(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("toml") / "fuzz.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    check(lambda: load_config(path))
    check(lambda: build_config({}, path))  # the CLI's layering: preset < file < options


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=60).map(str.encode), st.binary(max_size=60),
                 st.sampled_from([b"[dp]\nlevel = 3\n", b'rounds = "3"\n', b"[plan]\nkind = []\n", b"dp = 1\n",
                                  b'plan = {kind = "sizes", client_size = -1}\n', b"archs = []\n", b"= 1\n",
                                  b'plan = {kind = "fractions", dirichlet_alpha = inf}\n', b"lr = nan\n", b"\xff\xfe"])))
def test_load_config_on_random_text(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("toml") / "fuzz.toml"
    path.write_bytes(content)
    check(lambda: load_config(path))
    check(lambda: build_config({"rounds": 2}, path))
