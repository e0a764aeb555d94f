"""Test-set utility: accuracy, balanced accuracy, ROC AUC of the tumour score, class collapse.

Accuracy alone flatters a model that always answers the larger class (85.7% on a 6:1
folder, say), so every evaluation also reports the balanced accuracy (mean recall over
classes) and the share of test images given the most predicted class: a share near 1
means the model predicts one class, whatever its accuracy.

AUC is the Mann-Whitney U statistic divided by n_pos * n_neg (Hanley & McNeil 1982):
the probability that a random positive scores above a random negative, ties counting
one half. Average ranks handle the ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: Class whose softmax probability is the score for the AUC ("tumor" in the brain-MRI data).
POSITIVE_CLASS = 1


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Rank-based ROC AUC of ``scores`` for ``labels == 1``; NaN when a class is absent."""
    scores = scores.detach().double().flatten().cpu()
    positive = labels.detach().flatten().cpu() == 1
    n_pos = int(positive.sum())
    n_neg = positive.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = torch.argsort(scores, stable=True)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    # Average rank (1-based) over each run of tied scores.
    unique, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    average = ends - (counts.double() - 1) / 2
    ranks[order] = average[inverse]
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


@torch.no_grad()
def predict_scores(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities (N x classes) in eval mode; restores the model's mode afterwards."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = as_float(images[start : start + batch_size].to(device, non_blocking=True))
        if batch.dim() == 4:  # NHWC convolutions: same scores up to rounding, faster (bench/precision.py --eval)
            batch = batch.contiguous(memory_format=torch.channels_last)
        outputs.append(torch.softmax(model(batch), dim=1).cpu())
    model.train(was_training)
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)


#: A model giving at least this share of the test images one class is flagged as predicting one class.
ONE_CLASS_SHARE = 0.98


@dataclass(frozen=True)
class TestMetrics:
    """One model on the test set; NaN where undefined (no test images, a class absent)."""

    accuracy: float
    auc: float
    balanced_accuracy: float
    #: share of test images assigned the most predicted class
    majority_share: float

    @property
    def predicts_one_class(self) -> bool:
        return self.majority_share >= ONE_CLASS_SHARE

    def fields(self, prefix: str = "") -> dict[str, float | None]:
        """``{prefix}test_accuracy`` ... as stored in metrics.jsonl and summary.json (null for NaN)."""
        values = {name: getattr(self, name) for name in TEST_FIELDS}
        return {f"{prefix}test_{name}": (None if not math.isfinite(v) else float(v)) for name, v in values.items()}


def balanced_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean recall over the classes present in ``labels`` (0.5 for a constant answer on 2 classes)."""
    labels, predicted = labels.cpu(), predicted.cpu()
    recalls = [float((predicted[labels == c] == c).double().mean()) for c in torch.unique(labels)]
    return sum(recalls) / len(recalls) if recalls else math.nan


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device, batch_size: int = 256) -> TestMetrics:
    """Accuracy, AUC of the class-1 score, balanced accuracy and majority share on the test images."""
    if len(labels) == 0:
        return TestMetrics(math.nan, math.nan, math.nan, math.nan)
    probs = predict_scores(model, images, device, batch_size)
    predicted = probs.argmax(1)
    accuracy = float((predicted == labels.cpu()).double().mean())
    majority = float(torch.bincount(predicted).max()) / len(predicted)
    return TestMetrics(accuracy, roc_auc(probs[:, POSITIVE_CLASS], labels), balanced_accuracy(predicted, labels), majority)


TEST_FIELDS = ("accuracy", "auc", "balanced_accuracy", "majority_share")


def final_test_fields(last: dict[str, Any], clients: list[dict[str, Any]], central: bool = False) -> dict[str, Any]:
    """summary.json's test figures: the global/server model's of the last round, and the clients' means.

    Shared by the engine and the Flower recorder so both transports write the same summary.
    """
    out: dict[str, Any] = {}
    for prefix in ("global", "server"):
        for name in TEST_FIELDS:
            key = f"{prefix}_test_{name}"
            if key in last:
                out[key] = last[key]
    for name in TEST_FIELDS:
        values = [r.get(f"test_{name}") for r in clients]
        if central:
            values = [last.get(f"global_test_{name}")]
        values = [v for v in values if v is not None]
        out[f"mean_client_test_{name}"] = sum(values) / len(values) if values else None
    return out


def as_float(images: torch.Tensor) -> torch.Tensor:
    """Images stored as uint8 (to save memory) become float in [0, 1]; float ones pass through."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images
