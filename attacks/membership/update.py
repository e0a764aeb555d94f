"""Update-alignment attack: the FL server's own vantage point.

The server sees what each client sent, so it knows the client's update
``received - before``. With SGD that update is ``-lr`` times a sum of minibatch gradients of
the client's training examples, so a member's own gradient points along ``before - received``
more than a non-member's does. We score a candidate by the cosine between its per-example
gradient (through the attacker's best model of the client at the start of the round, per
knowledge level) and ``before - received``, standardised within each label (see
:func:`standardize_per_label`) and averaged over the observed rounds. This is the
gradient-alignment idea of Nasr et al., "Comprehensive Privacy Analysis of Deep Learning"
(S&P 2019, https://arxiv.org/abs/1812.00910) and of the "gradient cosine" score of
Maddock et al. (CANIFE, ICLR 2023), applied to the update of one FL round.

For the ``shared`` layer the per-example gradient has a closed form, ``dL/dW = g z^T`` with
z the layer's input and g the gradient at its output, so no per-example backward is needed;
other parameters use ``torch.func.vmap``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from attacks.membership.base import MembershipAttack, MembershipQuery, register_attack
from privfed.errors import PrivfedError

SHARED_KEYS = ("shared.weight", "shared.bias")


def _matching(model: nn.Module, direction: dict[str, torch.Tensor]) -> list[str]:
    params = dict(model.named_parameters())
    return [n for n in direction if n in params and params[n].shape == direction[n].shape and direction[n].is_floating_point()]


def _cosine_shared(model: nn.Module, images, labels, direction, batch_size: int, device) -> np.ndarray:
    dw = direction.get("shared.weight")
    db = direction.get("shared.bias")
    d_norm_sq = sum(float((t.double() ** 2).sum()) for t in (dw, db) if t is not None)
    out = []
    for i in range(0, len(images), batch_size):
        x, y = images[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
        with torch.no_grad():
            z = model.shared_input(x)
        h = model.shared(z).detach().requires_grad_(True)
        loss = nn.functional.cross_entropy(model.classifier(model.act(h)), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, h)  # per-example: samples do not interact after `shared`
        g, z = g.double(), z.double()
        dot = torch.zeros(len(x), dtype=torch.float64, device=g.device)
        norm_sq = torch.zeros_like(dot)
        if dw is not None:
            dot += torch.einsum("ni,ij,nj->n", g, dw.to(g), z)
            norm_sq += (g**2).sum(1) * (z**2).sum(1)
        if db is not None:
            dot += g @ db.to(g)
            norm_sq += (g**2).sum(1)
        out.append((dot / (norm_sq.sqrt() * d_norm_sq**0.5).clamp_min(1e-30)).cpu())
    return torch.cat(out).numpy()


#: bytes the per-example gradients of one chunk may take: a full `simple` model at 224x224
#: has 18.4M parameters, so 64 examples' gradients alone were 4.7 GB, and their float64
#: copies took the seed study past 24 GB of memory
PER_EXAMPLE_GRADIENT_BUDGET = 1 << 30


def examples_per_chunk(num_params: int, batch_size: int, budget_bytes: int = PER_EXAMPLE_GRADIENT_BUDGET) -> int:
    """How many examples' per-example gradients (float32, about twice over with vmap's
    intermediates) fit in ``budget_bytes``; at least 1, at most ``batch_size``."""
    return max(1, min(batch_size, budget_bytes // max(1, 8 * num_params)))


def _cosine_generic(model: nn.Module, names: list[str], images, labels, direction, batch_size: int, device,
                    budget_bytes: int = PER_EXAMPLE_GRADIENT_BUDGET) -> np.ndarray:
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    free = {n: params[n] for n in names}
    d = {n: direction[n].to(device, torch.float32).flatten() for n in names}
    d_norm = float(sum((t.double() ** 2).sum() for t in d.values())) ** 0.5
    chunk = examples_per_chunk(sum(t.numel() for t in d.values()), batch_size, budget_bytes)

    def loss_of(sub, x, y):
        merged = {**params, **sub}
        logits = functional_call(model, (merged, buffers), (x.unsqueeze(0),))
        return nn.functional.cross_entropy(logits, y.unsqueeze(0))

    per_example = vmap(grad(loss_of), in_dims=(None, 0, 0))
    out = []
    for i in range(0, len(images), chunk):
        x, y = images[i : i + chunk].to(device), labels[i : i + chunk].to(device)
        g = per_example(free, x, y)
        # matrix-vector products and norms reduce in place: no copy of the per-example gradients
        dot = sum((g[n].flatten(1) @ d[n]).double() for n in names)
        norm = sum(torch.linalg.vector_norm(g[n].flatten(1), dim=1).double() ** 2 for n in names).sqrt()
        del g
        out.append((dot / (norm * d_norm).clamp_min(1e-30)).cpu())
    return torch.cat(out).numpy()


def gradient_cosine(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, direction: dict[str, torch.Tensor], batch_size: int = 64, device="cpu"
) -> np.ndarray:
    """Cosine between each example's loss gradient and ``direction``, over the shared names."""
    model = model.to(device).eval()
    names = _matching(model, direction)
    if not names:
        raise PrivfedError(
            "update-cosine: the observed update has no tensor matching the attacker model's parameters "
            f"(update has {sorted(direction)[:4]}...); this knowledge level cannot be used with this run"
        )
    if set(names) <= set(SHARED_KEYS) and hasattr(model, "shared_input"):
        return _cosine_shared(model, images, labels, {n: direction[n].to(device) for n in names}, batch_size, device)
    return _cosine_generic(model, names, images, labels, direction, batch_size, device)


@register_attack
class UpdateCosineAttack(MembershipAttack):
    name = "update-cosine"
    requires = frozenset({"updates"})
    threat_model = (
        "The FL server compares each candidate's gradient, through its best model of the client at the start "
        "of a round, with the update the client sent that round (cosine, averaged over observed rounds)."
    )
    paper = "Nasr et al. 2019, https://arxiv.org/abs/1812.00910"

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def score(self, query: MembershipQuery) -> np.ndarray:
        if not query.updates:
            raise PrivfedError("update-cosine: no observed round for this client; train with --observe covering its rounds")
        labels = np.asarray(query.labels)
        scores = []
        for u in query.updates:
            cos = gradient_cosine(u.model, query.images, query.labels, u.direction, self.batch_size, query.device)
            scores.append(standardize_per_label(cos, labels))
        return np.mean(scores, axis=0)


def standardize_per_label(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """z-score within each label over all candidates (membership unused).

    Early in training every gradient mostly says "move toward class y", so raw cosines
    split by label (about +1 for one class, -1 for the other) whatever the membership;
    comparing candidates only with others of the same label removes that.
    """
    out = np.zeros_like(values, dtype=np.float64)
    for label in np.unique(labels):
        mask = labels == label
        v = values[mask]
        out[mask] = (v - v.mean()) / (v.std() + 1e-12) if mask.sum() > 1 else 0.0
    return out
