"""What travels in a Flower Message, in one place: tensors, settings, the run's config.

A message's ``RecordDict`` holds ``"arrays"`` (an ArrayRecord of state-dict tensors, numpy
serialised without pickle by Flower), ``"config"`` (a ConfigRecord: the resolved
TrainConfig as JSON, the client index the server assigned, the round and the
:class:`~privfed.federated.strategy.LocalSettings`) and, in replies, ``"metrics"`` (a
MetricRecord; a value that is unknown, e.g. a test accuracy without test data, is left out
rather than sent as NaN).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import torch

from privfed.federated.config import TrainConfig
from privfed.federated.strategy import LocalSettings

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
#: ConfigRecord keys
PRIVFED_CONFIG = "privfed-config"
CLIENT = "client"
ROUND = "server-round"
SETTINGS_PREFIX = "local-"
#: Query action asking a node who it is and which sample ids it holds.
DESCRIBE = "describe"


def to_arrays(tensors: Mapping[str, torch.Tensor]):
    from flwr.app import ArrayRecord

    return ArrayRecord({name: _array(t) for name, t in tensors.items()})


def _array(tensor: torch.Tensor):
    from flwr.app import Array

    return Array(tensor.detach().to("cpu").contiguous().numpy())


def from_arrays(record) -> dict[str, torch.Tensor]:
    """ArrayRecord -> state-dict tensors (copies, so they are writable and own their memory)."""
    if record is None:
        return {}
    return {name: torch.from_numpy(array.numpy().copy()) for name, array in record.items()}


def tensor_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Payload bytes, counted like the in-process engine (numel x element size, no framing)."""
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


def config_record(config: TrainConfig, client: int, server_round: int, settings: LocalSettings | None = None):
    from flwr.app import ConfigRecord

    record = ConfigRecord({PRIVFED_CONFIG: json.dumps(config.to_dict()), CLIENT: int(client), ROUND: int(server_round)})
    if settings is not None:
        for field in dataclasses.fields(settings):
            record[SETTINGS_PREFIX + field.name] = getattr(settings, field.name)
    return record


def read_config_record(record) -> tuple[TrainConfig, int, int, LocalSettings | None]:
    config = TrainConfig.from_dict(json.loads(str(record[PRIVFED_CONFIG])), source="message from the ServerApp")
    values = {
        f.name: record[SETTINGS_PREFIX + f.name]
        for f in dataclasses.fields(LocalSettings)
        if SETTINGS_PREFIX + f.name in record
    }
    settings = LocalSettings(**values) if values else None
    return config, int(record[CLIENT]), int(record[ROUND]), settings


def metric_record(values: Mapping[str, Any]):
    """A MetricRecord of the finite numbers in ``values`` (None and NaN are left out)."""
    from flwr.app import MetricRecord

    clean = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, float) and not math.isfinite(value):
            continue
        clean[key] = value
    return MetricRecord(clean)


def read_metrics(record) -> dict[str, Any]:
    return dict(record.items()) if record is not None else {}
