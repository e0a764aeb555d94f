"""Search images in the server's image subspace, with L-BFGS, for a given objective.

Pixel-space inversion of `simple` is badly posed: at 64x64 its fc input holds 800 numbers
for 4096 pixels, and matching those 800 numbers to a relative error of 1e-5 from the
server's mean image still lands *below* the mean image in PSNR (measured: 15.1 dB against
18.6 dB). The gradients of the conv layers pin the truth down only within about 1% of a
pixel (their max-pool and ReLU switches flip beyond that), so gradient descent on them from
far away wanders. What works is to search few, smooth unknowns: the whitened coefficients
of the server's principal components (:class:`attacks.inversion.priors.ImageSubspace`), as
GIAS (Jeon et al. 2021, https://arxiv.org/abs/2110.14962) searches a generator fitted on
public data. With k <= 512 unknowns the recovered layer quantities over-determine the
image, the objective is smooth enough for L-BFGS (Liu & Nocedal 1989), and a ridge on the
coefficients is the Gaussian prior the server's images imply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from attacks.inversion.priors import ImagePrior, ImageSubspace


@dataclass(frozen=True)
class SubspaceSetup:
    """L-BFGS settings of :func:`search_subspace` (tuned on real MRI at 64x64, bench/inversion.py)."""

    ridge: float = 1e-2  # weight of mean(coefficients^2): the server images' Gaussian prior
    history: int = 50


class _BudgetSpent(Exception):
    """Raised inside the L-BFGS closure once the evaluation budget is spent."""


class SubspaceImages(torch.nn.Module):
    """``num`` images as whitened subspace coefficients, clamped to the prior's value range.

    ``centre`` (num x C x S x S) puts each image's own origin in place of the subspace's mean:
    a residual subspace around a per-image guess.
    """

    def __init__(self, num: int, prior: ImagePrior, subspace: ImageSubspace, device, start: torch.Tensor | None = None,
                 centre: torch.Tensor | None = None):
        super().__init__()
        self.subspace, self.prior = subspace, prior
        self.centre = None if centre is None else centre.detach().to(device)
        coefficients = torch.zeros(num, subspace.rank, device=device) if start is None else start.detach().to(device).clone()
        self.coefficients = torch.nn.Parameter(coefficients)

    def forward(self) -> torch.Tensor:
        low, high = self.prior.value_range
        images = self.subspace.images(self.coefficients, self.centre).clamp(low, high)
        return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def search_subspace(
    images: SubspaceImages,
    objective: Callable[[torch.Tensor], torch.Tensor],
    evaluations: int,
    setup: SubspaceSetup = SubspaceSetup(),
) -> tuple[float, int]:
    """Minimise ``objective(images()) + ridge * mean(c^2)`` with L-BFGS; returns (objective, evaluations run).

    ``evaluations`` caps the objective evaluations (forward + backward passes), the unit in
    which the result states its budget (``iterations``).
    """
    if evaluations <= 0:
        return float(objective(images()).detach()), 0
    params = [images.coefficients]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=evaluations, max_eval=evaluations, history_size=setup.history,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)
    count = 0
    best = (float("inf"), images.coefficients.detach().clone())

    def closure():
        nonlocal count, best
        if count >= evaluations:  # the line search may ask for more than max_eval: a hard cap
            raise _BudgetSpent
        count += 1
        optimizer.zero_grad(set_to_none=True)
        loss = objective(images()) + setup.ridge * images.coefficients.pow(2).mean()
        loss.backward()
        if float(loss.detach()) < best[0]:
            best = (float(loss.detach()), images.coefficients.detach().clone())
        return loss

    try:
        optimizer.step(closure)
    except _BudgetSpent:
        with torch.no_grad():
            images.coefficients.copy_(best[1])
    final = objective(images())  # with autograd on: gradient-matching objectives differentiate inside
    return float(final.detach()), count
