import math

import torch

from privfed.federated.evaluation import balanced_accuracy, evaluate, roc_auc


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


class _Constant(torch.nn.Module):
    """Always answers class ``answer`` with probability 0.9, whatever the image."""

    def __init__(self, answer: int) -> None:
        super().__init__()
        self.answer = answer

    def forward(self, x):
        logits = torch.zeros(len(x), 2)
        logits[:, self.answer] = 2.2
        return logits


def test_a_one_class_model_is_caught_by_balanced_accuracy_and_majority_share():
    # 6:1 imbalance, the user's folder of the study issue: "always the larger class" scores 85.7%
    labels = torch.tensor([0] * 12 + [1] * 2)
    images = torch.zeros(len(labels), 3, 4, 4)
    tested = evaluate(_Constant(0), images, labels, torch.device("cpu"))
    assert abs(tested.accuracy - 12 / 14) < 1e-12
    assert tested.balanced_accuracy == 0.5 and tested.majority_share == 1.0 and tested.predicts_one_class
    assert tested.fields("global_")["global_test_balanced_accuracy"] == 0.5
    assert tested.fields()["test_auc"] == 0.5  # constant scores rank nothing


def test_balanced_accuracy_hand_computed():
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    predicted = torch.tensor([0, 0, 0, 1, 1, 0])
    assert balanced_accuracy(predicted, labels) == (3 / 4 + 1 / 2) / 2


def test_empty_test_set_gives_nulls_not_numbers():
    tested = evaluate(_Constant(0), torch.zeros(0, 3, 4, 4), torch.zeros(0, dtype=torch.long), torch.device("cpu"))
    assert set(tested.fields().values()) == {None} and not tested.predicts_one_class
