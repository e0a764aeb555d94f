"""Test-set accuracy and ROC AUC of the tumour score, with no sklearn dependency.

AUC is the Mann-Whitney U statistic divided by n_pos * n_neg (Hanley & McNeil 1982):
the probability that a random positive scores above a random negative, ties counting
one half. Average ranks handle the ties.
"""

from __future__ import annotations

import math

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
        batch = as_float(images[start : start + batch_size]).to(device, non_blocking=True)
        outputs.append(torch.softmax(model(batch), dim=1).cpu())
    model.train(was_training)
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device, batch_size: int = 256) -> tuple[float, float]:
    """(accuracy, AUC of the class-1 score) on the given test images."""
    if len(labels) == 0:
        return math.nan, math.nan
    probs = predict_scores(model, images, device, batch_size)
    accuracy = float((probs.argmax(1) == labels.cpu()).double().mean())
    return accuracy, roc_auc(probs[:, POSITIVE_CLASS], labels)


def as_float(images: torch.Tensor) -> torch.Tensor:
    """Images stored as uint8 (to save memory) become float in [0, 1]; float ones pass through."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images
