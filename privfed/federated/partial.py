"""Partial-weight aggregation (the seed's method): only the ``shared`` layer leaves a client.

Clients may run different architectures and ``shared`` widths. The server maps client k's
w_k x w_k layer into a common h x h form with F_k (identity when w_k = h; otherwise a
fixed, seed-determined Q_k with orthonormal columns, F(W) = Q W Q^T, F(b) = Q b; see
:mod:`privfed.models.mapping`), combines the mapped layers with a rule G
(``--aggregation``), trains its own model on its data starting from the aggregate, and
sends F_k^-1 of the result back. Backbones, ``fc`` and classifiers never leave a client.

The scheme follows the split-layer idea of heterogeneous-model FL such as FedRep
(Collins et al. 2021, arXiv 2102.07078) and HeteroFL (Diao et al. 2021, arXiv 2010.01264),
restricted to one exchanged layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from privfed.federated.aggregation import AggregationRule, make_aggregation
from privfed.federated.strategy import ALGORITHMS, ClientUpdate, FedAvg
from privfed.models.mapping import embedding_matrix, from_common, to_common

SHARED_KEYS = ("shared.weight", "shared.bias")


@ALGORITHMS.register("partial")
class PartialAggregation(FedAvg):
    """Overrides what is sent (``payload``) and aggregates in the common h x h form."""

    name = "partial"
    kind = "shared-layer"

    def __init__(self, rule: AggregationRule | None = None, common_width: int = 1024, seed: int = 0) -> None:
        super().__init__(rule)
        self.common_width = int(common_width)
        self.seed = int(seed)
        self._q: dict[int, torch.Tensor] = {}

    @classmethod
    def from_config(cls, config):
        return cls(make_aggregation(config.aggregation, config.trim_fraction), config.common_width, config.seed)

    def q(self, width: int) -> torch.Tensor:
        """Q_w (h x w), the same for every client of that width and for attackers."""
        if width not in self._q:
            self._q[width] = embedding_matrix(width, self.common_width, self.seed)
        return self._q[width]

    def payload(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: state[name].detach().clone() for name in SHARED_KEYS}

    def to_common(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """F: a client's ``shared`` (w x w, w) -> (h x h, h)."""
        weight, bias = tensors["shared.weight"], tensors["shared.bias"]
        if weight.shape[0] == self.common_width:
            return {"shared.weight": weight.clone(), "shared.bias": bias.clone()}
        w, b = to_common(weight, bias, self.q(weight.shape[0]).to(weight.device))
        return {"shared.weight": w, "shared.bias": b}

    def from_common(self, tensors: Mapping[str, torch.Tensor], width: int) -> dict[str, torch.Tensor]:
        """F^-1: the common (h x h, h) -> a client's ``shared`` of width ``width``."""
        weight, bias = tensors["shared.weight"], tensors["shared.bias"]
        if width == self.common_width:
            return {"shared.weight": weight.clone(), "shared.bias": bias.clone()}
        w, b = from_common(weight, bias, self.q(width).to(weight.device))
        return {"shared.weight": w, "shared.bias": b}

    def aggregate_train(
        self, server_round: int, global_state: Mapping[str, torch.Tensor], updates: Sequence[ClientUpdate]
    ) -> dict[str, torch.Tensor]:
        """G(F_1(S_1), ..., F_K(S_K)) in common form; the engine then trains the server model on it."""
        mapped = [self.to_common(u.tensors) for u in updates]
        return self.rule.aggregate(mapped, [u.num_samples for u in updates])
