import math

import torch

from privfed.federated.evaluation import roc_auc


def test_auc_hand_computed_with_tie():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4])
    labels = torch.tensor([0, 0, 1, 1, 1])
    # pairs (pos, neg): 0.35>0.1 yes, 0.35>0.4 no; 0.8 beats both; 0.4 beats 0.1, ties 0.4 -> 0.5
    assert roc_auc(scores, labels) == (1 + 0 + 1 + 1 + 1 + 0.5) / 6


def test_auc_extremes_and_single_class():
    labels = torch.tensor([0, 0, 1, 1])
    assert roc_auc(torch.tensor([0.0, 0.1, 0.9, 1.0]), labels) == 1.0
    assert roc_auc(torch.tensor([1.0, 0.9, 0.1, 0.0]), labels) == 0.0
    assert math.isnan(roc_auc(torch.tensor([0.2, 0.3]), torch.tensor([1, 1])))
