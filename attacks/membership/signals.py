"""What a membership attack reads off a model: logits, true-class probability, phi, loss.

LiRA's statistic is the logit-scaled confidence ``phi = log(p / (1 - p))`` of the true
class (Carlini et al. 2022, Sec. IV-B): it turns the heavy-tailed confidence into
something close to Gaussian across retrainings. We compute it from logits as
``z_y - logsumexp(z_{j != y})``, which is exact and never divides by ``1 - p = 0``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn





@torch.no_grad()
def model_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 128, device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits of ``model`` in eval mode (BatchNorm uses running statistics), on the CPU."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    model.to(device)
    out = [model(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def true_class_phi(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """``log(p_y / (1 - p_y))`` for the true class y, computed stably from logits."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    return (true - torch.logsumexp(others, dim=1)).numpy()


def true_class_prob(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return torch.softmax(z, dim=1).gather(1, y[:, None]).squeeze(1).numpy()


def cross_entropy(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return torch.nn.functional.cross_entropy(z, y, reduction="none").numpy()
