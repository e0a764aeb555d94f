"""Image-reconstruction metrics: MSE, PSNR, SSIM and Hungarian matching.

Gradient inversion returns a *set* of images in no particular order, so before scoring we
match each reconstruction to one true image by maximising total PSNR with the Hungarian
algorithm (``scipy.optimize.linear_sum_assignment``), as breaching's analysis does.

Images are float tensors or arrays in [0, 1], shaped ``C x H x W`` (one image) or
``N x C x H x W`` (a batch). PSNR of identical images is ``inf`` mathematically; we return
``inf`` from :func:`psnr` and the JSON writer (``privfed.io``) turns it into ``null``.
Aggregates (means) use :data:`PSNR_CAP` = 100 dB for identical images so that a mean
stays finite; the cap is far above any real reconstruction (8-bit quantisation alone gives
about 59 dB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from skimage.metrics import structural_similarity

#: PSNR used in place of inf for identical images when averaging (dB).
PSNR_CAP = 100.0


def _as_batch(images) -> np.ndarray:
    array = images.detach().cpu().double().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, dtype=np.float64)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"expected C x H x W or N x C x H x W images, got shape {array.shape}")
    return array.astype(np.float64)


def mse(a, b) -> float:
    """Mean squared error of two images (or two equally shaped batches) in [0, 1]."""
    a, b = _as_batch(a), _as_batch(b)
    return float(np.mean((a - b) ** 2))


def psnr(a, b, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10 log10(range^2 / MSE) in dB; ``inf`` when identical."""
    error = mse(a, b)
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / error)


def ssim(a, b) -> float:
    """Structural similarity (scikit-image, data_range=1) of one image pair, averaged over channels."""
    a, b = _as_batch(a)[0], _as_batch(b)[0]
    side = min(a.shape[1], a.shape[2])
    window = min(7, side if side % 2 == 1 else side - 1)
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=0, win_size=window))


def psnr_matrix(reconstructions, originals) -> np.ndarray:
    """PSNR of every reconstruction (rows) against every original (columns), capped at PSNR_CAP."""
    rec, orig = _as_batch(reconstructions), _as_batch(originals)
    flat = orig.reshape(orig.shape[0], -1)
    errors = np.stack([((flat - r.reshape(1, -1)) ** 2).mean(axis=1) for r in rec])  # row by row: bounded memory
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(1.0 / errors)
    return np.minimum(values, PSNR_CAP)


def match_reconstructions(reconstructions, originals) -> list[tuple[int, int]]:
    """Pairs ``(reconstruction index, original index)`` maximising the summed PSNR.

    With more reconstructions than originals (or the reverse) only min(N, M) pairs are made.
    """
    scores = psnr_matrix(reconstructions, originals)
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


@dataclass
class SampleScore:
    """One matched pair; field names are those of the per-sample rows in the result JSON."""

    sample_id: str
    label: int
    predicted_label: int | None
    psnr: float
    ssim: float
    mse: float
    reconstruction_index: int

    def row(self) -> dict:
        return {
            "sample_id": self.sample_id,
            "label": self.label,
            "predicted_label": self.predicted_label,
            "psnr": self.psnr,
            "ssim": self.ssim,
            "mse": self.mse,
        }


def score_reconstructions(
    reconstructions,
    originals,
    sample_ids: list[str],
    labels: list[int],
    predicted_labels: list[int] | None = None,
) -> list[SampleScore]:
    """Match reconstructions to originals (Hungarian on PSNR) and score every matched pair.

    ``predicted_labels[i]`` is the label the attack assigned to reconstruction ``i``; the
    row of original ``j`` reports the label of the reconstruction matched to it.
    """
    rec, orig = _as_batch(reconstructions), _as_batch(originals)
    scores = []
    for r, c in sorted(match_reconstructions(rec, orig), key=lambda pair: pair[1]):
        scores.append(
            SampleScore(
                sample_id=str(sample_ids[c]),
                label=int(labels[c]),
                predicted_label=None if predicted_labels is None else int(predicted_labels[r]),
                psnr=psnr(rec[r], orig[c]),
                ssim=ssim(rec[r], orig[c]),
                mse=mse(rec[r], orig[c]),
                reconstruction_index=r,
            )
        )
    return scores
