"""FedProx: FedAvg plus a proximal term in the local loss.

Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020,
https://arxiv.org/abs/1812.06127.
"""

from __future__ import annotations

from privfed.federated.aggregation import AggregationRule, make_aggregation
from privfed.federated.strategy import ALGORITHMS, FedAvg, LocalSettings, settings_with


@ALGORITHMS.register("fedprox")
class FedProx(FedAvg):
    """Server side identical to FedAvg; only ``configure_train`` differs.

    Each client must add mu/2 ||w - w_global||^2 to its loss, where w_global is its model
    right after loading the received weights (the client trainer does this when
    ``settings.mu > 0``). mu = 0 is FedAvg exactly; larger mu keeps clients closer to the
    global model, which limits client drift on non-IID data.
    """

    name = "fedprox"

    def __init__(self, rule: AggregationRule | None = None, mu: float = 0.01) -> None:
        super().__init__(rule)
        self.mu = float(mu)

    @classmethod
    def from_config(cls, config):
        return cls(make_aggregation(config.aggregation, config.trim_fraction), config.mu)

    def configure_train(self, server_round: int, settings: LocalSettings) -> LocalSettings:
        return settings_with(settings, mu=self.mu)
