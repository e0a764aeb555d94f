"""Reference points for a federated run, trained by the same command.

- ``local``: each client trains alone on its own data and shares nothing (0 bytes); the
  floor FL has to beat for it to be worth its privacy cost.
- ``centralized``: one model trained on the union of the clients' data, the ceiling that
  pooling all data (with no privacy at all) reaches.
"""

from __future__ import annotations

from privfed.federated.strategy import ALGORITHMS, FedAvg


@ALGORITHMS.register("local")
class LocalOnly(FedAvg):
    """Nothing is sent or aggregated; each client's metrics are those of its own model."""

    name = "local"
    kind = "local"


@ALGORITHMS.register("centralized")
class Centralized(FedAvg):
    """The engine trains one model on the concatenated client data each round."""

    name = "centralized"
    kind = "centralized"
