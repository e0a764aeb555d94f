"""Is a reconstruction evidence of leakage? Null attack, gain with an interval, identification.

A PSNR means nothing alone: MRI slices share a dark background and a skull outline, so a
guess that knows nothing about the client (the server's own images, or their mean) already
scores 15-20 dB against them. Every figure here is therefore reported beside a **null
attack** scored exactly like the real one (same number of guesses, same matching to the
same true images), in the spirit of the "trivial baseline" controls of membership auditing
(Carlini et al. 2022) applied to reconstruction:

* ``gain_db``: attack PSNR minus null PSNR, with a bootstrap 95% interval (paired over the
  true images when both sides are matched to the same ones, else the two sides resampled
  apart);
* **identification**: rank a pool of candidates (the client's training images plus as many
  images no client trained on) by SSIM to each reconstruction; the rate at which the true
  source ranks first, against ``1 / pool`` and against the null's own rate, with exact
  Clopper-Pearson intervals. This is the figure a privacy officer reads: "given the
  reconstruction, could one pick out the patient's scan?"

SSIM here is computed on grey (channel-mean) images with scikit-image's defaults (7x7
uniform window, K1 0.01, K2 0.03, sample covariance, valid region), vectorised in torch so
that ranking thousands of candidates costs seconds; :func:`ssim_matrix` equals
``skimage.metrics.structural_similarity`` on the grey images (tested).

Every interval can be widened for a family of comparisons (``alpha`` / number of rows,
Bonferroni), so a headline that is the best of many rows is not a false alarm waiting to
happen: see :func:`familywise_alpha`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from attacks.metrics.membership import ALPHA, clopper_pearson

#: scikit-image's defaults for SSIM
SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
#: bootstrap resamples of the gain interval (enough for tails of alpha / 20 at alpha 0.05)
N_BOOTSTRAP = 4000


def grey(images: torch.Tensor) -> torch.Tensor:
    """N x C x H x W (or C x H x W) -> N x H x W, the channel mean, float32 on the CPU."""
    images = images.detach().cpu().float()
    if images.dim() == 3:
        images = images[None]
    return images.mean(1)


def _local_stats(x: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Local mean and E[x^2] over every full ``window`` x ``window`` patch (valid region)."""
    x = x[:, None]
    return F.avg_pool2d(x, window, stride=1)[:, 0], F.avg_pool2d(x * x, window, stride=1)[:, 0]


def ssim_matrix(a: torch.Tensor, b: torch.Tensor, chunk: int = 256, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of every grey image of ``a`` (N x H x W) against every one of ``b`` (M x H x W): N x M."""
    a, b = a.double(), b.double()
    side = min(a.shape[-2:])
    window = min(SSIM_WINDOW, side if side % 2 == 1 else side - 1)
    cov_norm = window * window / (window * window - 1)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mean_a, sq_a = _local_stats(a, window)
    var_a = cov_norm * (sq_a - mean_a**2)
    out = torch.empty(a.shape[0], b.shape[0], dtype=torch.float64)
    for start in range(0, b.shape[0], chunk):
        part = b[start : start + chunk]
        mean_b, sq_b = _local_stats(part, window)
        var_b = cov_norm * (sq_b - mean_b**2)
        for i in range(a.shape[0]):
            cross = F.avg_pool2d((a[i][None] * part)[:, None], window, stride=1)[:, 0]
            cov = cov_norm * (cross - mean_a[i][None] * mean_b)
            s = ((2 * mean_a[i] * mean_b + c1) * (2 * cov + c2)) / (
                (mean_a[i] ** 2 + mean_b**2 + c1) * (var_a[i] + var_b + c2)
            )
            out[i, start : start + part.shape[0]] = s.flatten(1).mean(1)
    return out.float()


@dataclass
class Identification:
    """For each reconstruction: the rank (1 = first) of its true source among the pool."""

    ranks: list[int]
    pool: int

    @property
    def hits(self) -> int:
        return sum(1 for r in self.ranks if r == 1)

    @property
    def top1(self) -> float:
        return self.hits / len(self.ranks) if self.ranks else math.nan

    @property
    def chance(self) -> float:
        return 1.0 / self.pool if self.pool else math.nan

    def interval(self, alpha: float = ALPHA) -> list[float]:
        lo, hi = clopper_pearson(self.hits, len(self.ranks), alpha)
        return [float(lo), float(hi)]


def identify(reconstructions: torch.Tensor, sources: Sequence[int], pool: torch.Tensor) -> Identification:
    """Rank ``pool`` (P x C x H x W) by SSIM to each reconstruction; ``sources[i]`` is the pool index of
    reconstruction i's true image. Ties rank pessimistically (a tie with the source counts against it)."""
    if len(reconstructions) == 0:
        return Identification([], int(pool.shape[0]))
    scores = ssim_matrix(grey(reconstructions), grey(pool))
    ranks = []
    for i, source in enumerate(sources):
        ranks.append(int((scores[i] >= scores[i, source]).sum()))
    return Identification(ranks, int(pool.shape[0]))


def gain_interval(
    attack: Sequence[float], null: Sequence[float], paired: bool, alpha: float = ALPHA,
    n_bootstrap: int = N_BOOTSTRAP, seed: int = 0,
) -> tuple[float, list[float] | None]:
    """Mean of ``attack`` minus mean of ``null`` (dB) and its interval; None from fewer than 2 images.

    ``paired``: ``attack[j]`` and ``null[j]`` score the same true image j, so the differences
    are resampled together; otherwise each side is resampled on its own. The percentile
    bootstrap is too narrow with a handful of images, so it is widened to the Student-t
    interval (paired, or Welch) wherever that is wider.
    """
    from scipy.stats import t as student

    a, b = np.asarray(attack, float), np.asarray(null, float)
    gain = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return gain, None
    rng = np.random.default_rng(seed)
    if paired:
        if a.shape != b.shape:
            raise ValueError("paired gains need one null value per attack value")
        d = a - b
        draws = d[rng.integers(0, d.size, (n_bootstrap, d.size))].mean(1)
        se, dof = d.std(ddof=1) / math.sqrt(d.size), d.size - 1
    else:
        draws = a[rng.integers(0, a.size, (n_bootstrap, a.size))].mean(1) - b[rng.integers(0, b.size, (n_bootstrap, b.size))].mean(1)
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = math.sqrt(va + vb)
        dof = (va + vb) ** 2 / max(va**2 / (a.size - 1) + vb**2 / (b.size - 1), 1e-300)
    lo, hi = np.percentile(draws, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    half = float(student.ppf(1 - alpha / 2, max(dof, 1))) * se
    return gain, [float(min(lo, gain - half)), float(max(hi, gain + half))]


def familywise_alpha(rows: int, alpha: float = ALPHA) -> float:
    """Bonferroni: each of ``rows`` intervals at alpha / rows keeps the chance of any false claim <= alpha."""
    return alpha / max(int(rows), 1)


def leaks(gain_ci: Sequence[float] | None, identification_ci: Sequence[float] | None,
          null_identification_ci: Sequence[float] | None) -> bool:
    """The one rule for claiming leakage from a reconstruction row.

    Leakage is claimed only where the gain interval lies above 0 dB, or the identification
    interval lies above the null attack's: the attack beat knowing nothing by more than
    chance explains.

    >>> leaks([0.4, 2.0], [0.0, 0.1], [0.0, 0.1])
    True
    >>> leaks([-0.5, 1.0], [0.6, 0.99], [0.0, 0.2])
    True
    >>> leaks([-0.5, 1.0], [0.0, 0.3], [0.0, 0.2])
    False
    >>> leaks(None, [0.0, 0.98], [0.0, 0.98])  # one image: nothing can be claimed
    False
    """
    if gain_ci is not None and gain_ci[0] > 0:
        return True
    if identification_ci is not None and null_identification_ci is not None:
        return identification_ci[0] > null_identification_ci[1]
    return False
