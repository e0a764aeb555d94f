"""Federated training: strategies (one small class each), the client trainer, and the round engine.

Importing this package registers every algorithm (``ALGORITHMS``) and aggregation rule
(``AGGREGATIONS``) so the CLI's choices come from the registries.
"""

from privfed.federated import baselines, fednova, fedprox, partial  # noqa: F401  (register algorithms)
from privfed.federated.aggregation import AGGREGATIONS, make_aggregation
from privfed.federated.client import client_round, train_local
from privfed.federated.config import PRESETS, TrainConfig, build_config, load_config
from privfed.federated.engine import run_training
from privfed.federated.strategy import ALGORITHMS, ClientUpdate, FedAvg, LocalSettings

__all__ = [
    "AGGREGATIONS", "ALGORITHMS", "ClientUpdate", "FedAvg", "LocalSettings", "PRESETS", "TrainConfig",
    "build_config", "client_round", "load_config", "make_aggregation", "run_training", "train_local",
]
