"""Federated Averaging (FedAvg), the base every privfed algorithm overrides one step of.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017, https://arxiv.org/abs/1602.05629.

Shaped like Flower's strategies (``flwr.serverapp.strategy.FedAvg``): ``configure_train``
decides what each client is told for a round, ``aggregate_train`` turns what the clients
sent into the new global state. Both work on plain dicts of tensors and dataclasses, with
no engine state, so a Flower ``Strategy`` can wrap them. FedProx overrides only
``configure_train``, FedNova only ``aggregate_train``, partial aggregation the payload
and the F maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import torch

from privfed.federated.aggregation import AggregationRule, WeightedMean, make_aggregation
from privfed.registry import Registry

if TYPE_CHECKING:
    from privfed.federated.config import TrainConfig


@dataclass(frozen=True)
class LocalSettings:
    """What the server tells a client to do in one round (Flower's train ConfigRecord)."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    #: FedProx proximal weight; 0 leaves the loss untouched (bitwise FedAvg).
    mu: float = 0.0
    #: weight each image's loss by n / (classes x n_class) of the party's own labels, so a
    #: party whose data is mostly one class does not learn to answer only that class
    balance_classes: bool = False
    #: "bf16": non-private steps run their forward pass under bfloat16 autocast
    precision: str = "fp32"
    #: non-private steps use NHWC (channels-last) activations and conv weights
    channels_last: bool = False


@dataclass
class ClientUpdate:
    """What the server received from client ``client`` in a round, plus its training stats."""

    client: int
    tensors: dict[str, torch.Tensor]
    num_samples: int
    local_steps: int
    #: ||a_k||_1 of FedNova: tau_k for plain SGD/Adam, the momentum-weighted count for SGD+momentum.
    a_norm: float
    train_loss: float


class FedAvg:
    """Weighted mean of the client models by sample count n_k / n.

    The mean can be swapped for another :mod:`~privfed.federated.aggregation` rule
    (``--aggregation median`` gives Flower's FedMedian).
    """

    name: ClassVar[str] = "fedavg"
    #: "full-model": clients send their whole state dict; "shared-layer": only ``shared``;
    #: "local": nothing is sent; "centralized": one model on the union of the data.
    kind: ClassVar[str] = "full-model"

    def __init__(self, rule: AggregationRule | None = None) -> None:
        self.rule = rule or WeightedMean()

    @classmethod
    def from_config(cls, config: TrainConfig) -> FedAvg:
        return cls(make_aggregation(config.aggregation, config.trim_fraction))

    def configure_train(self, server_round: int, settings: LocalSettings) -> LocalSettings:
        """Settings sent to every sampled client this round (unchanged for FedAvg)."""
        return settings

    def payload(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The part of a client's state dict it sends (all of it for full-model algorithms)."""
        return {name: tensor.detach().clone() for name, tensor in state.items()}

    def aggregate_train(
        self, server_round: int, global_state: Mapping[str, torch.Tensor], updates: Sequence[ClientUpdate]
    ) -> dict[str, torch.Tensor]:
        """The new global state from the clients' tensors, weighted by their sample counts."""
        return self.rule.aggregate([u.tensors for u in updates], [u.num_samples for u in updates])


ALGORITHMS: Registry[type[FedAvg]] = Registry("algorithm", "--algorithm")
ALGORITHMS.add("fedavg", FedAvg)


def settings_with(settings: LocalSettings, **changes) -> LocalSettings:
    return replace(settings, **changes)
