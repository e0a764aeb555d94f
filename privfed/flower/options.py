"""What a Flower run is told: Flower's run config and node config, turned into typed options.

Flower passes settings as flat key-value tables (``[tool.flwr.app.config]`` plus
``flwr run --run-config "k=v ..."`` on the server side, ``flower-supernode --node-config``
on a client), with hyphenated keys and scalar values only. Every TrainConfig field is
accepted under its hyphenated name (``num-clients``, ``shared-width``, ``dp-level``, ...);
list fields take comma-separated strings (``archs = "simple,mobilenet_v3_small"``). The
result goes through the engine's :func:`~privfed.federated.config.build_config`, so a
Flower run validates and resolves exactly like ``privfed train``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privfed.errors import PrivfedError, closest
from privfed.federated.config import TrainConfig, build_config

#: Run-config keys that belong to the Flower deployment, not to TrainConfig.
FLOWER_KEYS = ("out-dir", "config-file", "round-timeout", "connect-timeout", "min-clients", "command")
#: TrainConfig fields given as lists (comma-separated in a run config).
LIST_FIELDS = {"archs": str, "shared_width": int, "local_epochs": int}
DP_PREFIX = "dp-"


@dataclass(frozen=True)
class FlowerOptions:
    """Deployment settings of the ServerApp (the training settings are a TrainConfig)."""

    #: Run directory on the SuperLink machine; must be absolute (the ServerApp's working
    #: directory is Flower's, not the caller's).
    out_dir: Path
    #: Seconds to wait for each round's replies (Flower's ``send_and_receive`` timeout).
    round_timeout: float = 600.0
    #: Seconds to wait for ``num_clients`` SuperNodes to connect before giving up.
    connect_timeout: float = 120.0
    #: A round counts only when at least this many sampled clients reply; None = all sampled.
    min_clients: int | None = None
    #: Recorded in config.json's ``command``.
    command: str = "flwr run (privfed flower app)"


def _split_list(value: Any, kind: type, key: str) -> Any:
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",") if item.strip()]
        try:
            values = [kind(item) for item in items]
        except ValueError:
            raise PrivfedError(f"run config {key}={value!r}: expected comma-separated {kind.__name__} values") from None
        return values[0] if len(values) == 1 and kind is int else values
    return value


def train_options_from_run_config(run_config: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Hyphenated run-config keys -> TrainConfig option dict (+ optional config file path)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    dp_names = {f.name for f in dataclasses.fields(TrainConfig().dp.__class__)}
    options: dict[str, Any] = {}
    dp: dict[str, Any] = {}
    for key, value in run_config.items():
        if key in FLOWER_KEYS:
            continue
        if key.startswith(DP_PREFIX) and key[len(DP_PREFIX):].replace("-", "_") in dp_names:
            dp[key[len(DP_PREFIX):].replace("-", "_")] = value
            continue
        name = key.replace("-", "_")
        if name not in names:
            valid = [n.replace("_", "-") for n in names] + list(FLOWER_KEYS) + [DP_PREFIX + n.replace("_", "-") for n in dp_names]
            raise PrivfedError(f"run config: unknown key {key!r}{closest(key, valid)}; valid keys: {', '.join(sorted(valid))}")
        if name in LIST_FIELDS:
            value = _split_list(value, LIST_FIELDS[name], key)
        if name == "plan" and isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise PrivfedError(f"run config plan={value!r}: not a plan name nor a JSON object ({exc})") from None
        options[name] = value
    if dp:
        options["dp"] = dp
    config_file = run_config.get("config-file") or None
    return options, str(config_file) if config_file else None


def config_from_run_config(run_config: Mapping[str, Any]) -> tuple[TrainConfig, FlowerOptions]:
    """A resolved TrainConfig and the FlowerOptions of a ServerApp run."""
    options, config_file = train_options_from_run_config(run_config)
    config = build_config(options, config_file).resolved()
    if config.algorithm in ("local", "centralized"):
        raise PrivfedError(
            f"run config algorithm={config.algorithm!r}: nothing is exchanged, so there is nothing to run on Flower; "
            "use 'privfed train' for the local and centralized baselines"
        )
    out = str(run_config.get("out-dir") or "")
    if not out:
        raise PrivfedError("run config: out-dir is missing; set out-dir to an absolute folder on the SuperLink machine")
    out_dir = Path(out).expanduser()
    if not out_dir.is_absolute():
        raise PrivfedError(f"run config out-dir={out!r}: must be an absolute path (the ServerApp does not run in your folder)")
    min_clients = run_config.get("min-clients")
    min_clients = int(min_clients) if min_clients not in (None, "", 0) else None
    if min_clients is not None and not 1 <= min_clients <= config.clients_per_round:
        raise PrivfedError(
            f"run config min-clients={min_clients}: must be between 1 and clients-per-round ({config.clients_per_round})"
        )
    flower = FlowerOptions(
        out_dir=out_dir,
        round_timeout=float(run_config.get("round-timeout", 600.0)),
        connect_timeout=float(run_config.get("connect-timeout", 120.0)),
        min_clients=min_clients,
        command=str(run_config.get("command") or FlowerOptions.command),
    )
    if flower.round_timeout <= 0 or flower.connect_timeout <= 0:
        raise PrivfedError("run config: round-timeout and connect-timeout must be positive numbers of seconds")
    return config, flower


def run_config_items(options: Mapping[str, Any]) -> dict[str, Any]:
    """TrainConfig-style options (underscored, lists, nested dp) -> flat hyphenated run config."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "dp" and isinstance(value, Mapping):
            for dp_name, dp_value in value.items():
                if dp_value is not None:
                    out[DP_PREFIX + dp_name.replace("_", "-")] = dp_value
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, Mapping):
            value = json.dumps(dict(value), sort_keys=True)
        out[name.replace("_", "-")] = value
    return out


@dataclass(frozen=True)
class NodeOptions:
    """A SuperNode's ``--node-config``: where its data is and which share of it to use.

    ``data-path``: an image folder (one subfolder per class) or an .npz file; ``"embedded"``:
    the shipped brain-MRI subset; absent: the run's own ``data`` in partition mode (the
    split only matches the server's when both split the same data, which is how a
    simulation's nodes, told nothing else, find it), else embedded. ``partition-id``/``num-partitions``: use
    that client's share of the split the run's seed and plan make of the data (how tests
    and simulations give several nodes one data set); absent: the node uses all of its
    data. ``test-path``: optional held-out data the client reports test metrics on (in
    partition mode the split's test set is used). ``device``: auto, cpu or cuda.
    """

    data_path: str | None = None
    partition_id: int | None = None
    num_partitions: int | None = None
    test_path: str | None = None
    device: str = "auto"

    KEYS = ("data-path", "partition-id", "num-partitions", "test-path", "device")

    def data_for(self, config: TrainConfig) -> str:
        """The data this node reads for a run of ``config``."""
        if self.data_path:
            return self.data_path
        return config.data if self.partition_id is not None else "embedded"

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Any]) -> NodeOptions:
        unknown = [k for k in node_config if k not in cls.KEYS]
        if unknown:
            raise PrivfedError(
                f"--node-config: unknown key {unknown[0]!r}{closest(unknown[0], cls.KEYS)}; valid keys: {', '.join(cls.KEYS)}"
            )
        pid = node_config.get("partition-id")
        parts = node_config.get("num-partitions")
        if (pid is None) != (parts is None):
            raise PrivfedError("--node-config: give partition-id and num-partitions together (or neither, to use all of data-path)")
        if pid is not None and not 0 <= int(pid) < int(parts):
            raise PrivfedError(f"--node-config: partition-id={pid} must be in 0..num-partitions-1 ({int(parts) - 1})")
        device = str(node_config.get("device", "auto"))
        if device not in ("auto", "cpu", "cuda"):
            raise PrivfedError(f"--node-config: device={device!r}; choose auto, cpu or cuda")
        return cls(
            data_path=str(node_config["data-path"]) if node_config.get("data-path") else None,
            partition_id=int(pid) if pid is not None else None,
            num_partitions=int(parts) if parts is not None else None,
            test_path=str(node_config["test-path"]) if node_config.get("test-path") else None,
            device=device,
        )
