"""Aggregation rules G: how the server combines the clients' tensors, one class each.

- ``mean``: weighted mean by sample count n_k / n (McMahan et al. 2017, FedAvg,
  arXiv 1602.05629).
- ``median``: coordinate-wise median, robust to a minority of outlying clients
  (Yin et al. 2018, arXiv 1803.01498; Flower's FedMedian).
- ``trimmed_mean``: coordinate-wise mean after dropping the ``trim_fraction`` largest and
  smallest values of each coordinate (Yin et al. 2018; Flower's FedTrimmedAvg).

Rules see only lists of tensors and weights (no engine state), so a Flower strategy can
wrap them unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from privfed.errors import PrivfedError
from privfed.registry import Registry


class AggregationRule:
    """Combine one tensor per client into one; ``weights`` are the clients' sample counts."""

    name = "mean"

    def combine(self, tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
        raise NotImplementedError

    def aggregate(self, states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
        """Apply :meth:`combine` to every floating tensor; integer ones (BatchNorm counters) take the max."""
        if not states:
            raise ValueError("nothing to aggregate: no client sent anything")
        result = {}
        for name in states[0]:
            values = [state[name] for state in states]
            if values[0].is_floating_point():
                result[name] = self.combine(values, weights).to(values[0].dtype)
            else:
                result[name] = torch.stack(values).amax(0)
        return result


AGGREGATIONS: Registry[type[AggregationRule]] = Registry("aggregation rule", "--aggregation")


@AGGREGATIONS.register("mean")
class WeightedMean(AggregationRule):
    """sum_k (n_k / n) x_k."""

    name = "mean"

    def combine(self, tensors, weights):
        total = float(sum(weights))
        if total <= 0:
            raise ValueError("aggregation weights must sum to a positive number")
        out = torch.zeros_like(tensors[0], dtype=torch.float64)
        for tensor, weight in zip(tensors, weights):
            out += tensor.double() * (float(weight) / total)
        return out


@AGGREGATIONS.register("median")
class CoordinateMedian(AggregationRule):
    """Per coordinate, the median over clients (the mean of the two middle values for an even count)."""

    name = "median"

    def combine(self, tensors, weights):
        stacked = torch.stack([t.double() for t in tensors])
        return torch.quantile(stacked, 0.5, dim=0) if len(tensors) > 1 else stacked[0]


@AGGREGATIONS.register("trimmed_mean")
class TrimmedMean(AggregationRule):
    """Per coordinate, drop floor(beta * K) values at each end, average the rest (unweighted)."""

    name = "trimmed_mean"

    def __init__(self, trim_fraction: float = 0.1) -> None:
        if not 0 <= trim_fraction < 0.5:
            raise PrivfedError(f"--trim-fraction must be in [0, 0.5), got {trim_fraction}")
        self.trim_fraction = trim_fraction

    def combine(self, tensors, weights):
        stacked = torch.sort(torch.stack([t.double() for t in tensors]), dim=0).values
        cut = int(math.floor(self.trim_fraction * len(tensors)))
        return stacked[cut : len(tensors) - cut].mean(0)


def make_aggregation(name: str, trim_fraction: float = 0.1) -> AggregationRule:
    cls = AGGREGATIONS.get(name)
    return cls(trim_fraction) if cls is TrimmedMean else cls()
