"""Label recovery from the last layer's update, before any image is optimised.

* Batch of one, iDLG (Zhao et al. 2020, https://arxiv.org/abs/2001.02610): with
  cross-entropy, dL/dlogit_c = p_c - y_c is negative only for the true class, so the bias
  gradient of the classifier (and the row sums of its weight gradient, whose inputs are
  post-ReLU and hence non-negative) is negative exactly at the label. An update is
  ``-lr * sum`` of gradients, so we look at the estimated mean gradient ``-update/(lr*steps)``.
* Larger batches, counting (in the spirit of Geng et al. 2021, https://arxiv.org/abs/2110.09074,
  and LLG, Wainakh et al. 2022): the mean bias gradient is ``mean_n p_n - counts / N``, so
  ``counts ~= N * (mean p - g_bias)``. The attacker estimates ``mean p`` by its model's mean
  prediction on its own (server) images, then rounds to integers that sum to N.
* From any linear layer whose input was recovered analytically (``fc``, or ``shared`` when
  only the shared layer is seen): the layer's bias update for one sample is
  ``relu'(.) * W^T (p - e_y)`` back-propagated from the classifier; we pick the class whose
  predicted pattern has the highest cosine with the observed one on that sample's rows.
  This assigns a label to each recovered input, which counting cannot.

  Limit (why knowledge ``none`` on the shared layer can score label accuracy 0.00): the
  pattern depends on the classifier above the layer. With two classes ``p - e_y`` is
  ``+-(1, -1)`` times a scalar, so the pattern is ``+-relu'(.) * (w_1 - w_0)``: a surrogate
  classifier (the server's own, knowledge ``none`` in partial runs) names the two clusters
  by the sign of ``<w_1 - w_0, w'_1 - w'_0>`` on the active rows, one coin flip shared by
  every sample, so accuracy is all-or-nothing (1.00 or 0.00), never informative. Labels are
  only identifiable up to a class permutation without the client's classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks.inversion.base import Observation


def idlg_label(bias_gradient: torch.Tensor) -> int:
    """The true label of a single-sample gradient: the only negative entry of dL/db."""
    return int(torch.argmin(bias_gradient))


def count_labels(bias_gradient: torch.Tensor, num: int, mean_probs: torch.Tensor | None = None) -> torch.Tensor:
    """``num`` labels whose class counts best explain the mean bias gradient (sorted by class)."""
    classes = bias_gradient.numel()
    probs = torch.full((classes,), 1.0 / classes) if mean_probs is None else mean_probs.float().cpu()
    raw = (num * (probs - bias_gradient.float().cpu())).clamp(min=0)
    raw = raw * (num / raw.sum()) if raw.sum() > 0 else torch.full((classes,), num / classes)
    counts = raw.floor().long()
    remainder = raw - counts
    for c in torch.argsort(remainder, descending=True)[: num - int(counts.sum())]:
        counts[c] += 1
    return torch.repeat_interleave(torch.arange(classes), counts)


def recover_labels(observation: Observation) -> torch.Tensor:
    """Labels for a full-model observation (from the classifier's bias update)."""
    if observation.labels is not None:
        return observation.labels.to(observation.device)
    gradient = observation.gradient_estimate("classifier.bias")
    if observation.num_images == 1:
        labels = torch.tensor([idlg_label(gradient)])
    else:
        labels = count_labels(gradient, observation.num_images, observation.prior.mean_probs)
    return labels.to(observation.device)


def labels_from_bias_pattern(
    head,
    bias: torch.nn.Parameter,
    inputs: torch.Tensor,
    bias_gradient: torch.Tensor,
    num_classes: int,
    rows: list[torch.Tensor] | None = None,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """One label per recovered layer input, from the sign pattern of that layer's bias update.

    ``head(x)`` maps the layer's input to logits and ``bias`` is the layer's bias; for each
    input and each class c we compute dL/dbias for label c and score its cosine with the
    observed mean gradient on the rows read for that input. Without ``counts`` each input
    takes its best class; with ``counts`` (the batch's labels as a multiset, e.g. from
    :func:`count_labels` on the classifier's bias update) the labels are assigned jointly,
    Hungarian on the scores, so the batch's class counts are respected.
    """
    scores = torch.zeros(len(inputs), num_classes, dtype=torch.float64)
    for n, x in enumerate(inputs):
        idx = rows[n] if rows is not None else torch.arange(bias_gradient.numel(), device=bias_gradient.device)
        for c in range(num_classes):
            with torch.enable_grad():
                loss = F.cross_entropy(head(x[None].detach()), torch.tensor([c], device=x.device))
                (pattern,) = torch.autograd.grad(loss, [bias])
            scores[n, c] = float(F.cosine_similarity(pattern[idx].double(), bias_gradient[idx].double(), dim=0))
    if counts is None or len(counts) != len(inputs):
        return scores.argmax(1).to(inputs.device)
    from scipy.optimize import linear_sum_assignment

    slots = counts.cpu().long()
    rows_, cols = linear_sum_assignment(scores[:, slots].numpy(), maximize=True)
    labels = torch.empty(len(inputs), dtype=torch.long)
    labels[torch.as_tensor(rows_)] = slots[torch.as_tensor(cols)]
    return labels.to(inputs.device)


def batch_label_counts(observation: Observation) -> torch.Tensor | None:
    """The batch's labels as a multiset from the classifier's bias update, when the server sees it."""
    if "classifier.bias" not in observation.update or observation.num_images <= 1:
        return None
    return count_labels(observation.gradient_estimate("classifier.bias"), observation.num_images, observation.prior.mean_probs)
