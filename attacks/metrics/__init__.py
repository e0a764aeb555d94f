"""Metrics for attacks, kept apart from the attacks themselves (as in breaching's ``analysis``).

An attack returns reconstructions; these functions only compare them with the ground truth
the evaluator holds, so no attack can peek at the truth through its own scoring.
"""

from attacks.metrics.image import (
    PSNR_CAP,
    SampleScore,
    match_reconstructions,
    mse,
    psnr,
    psnr_matrix,
    score_reconstructions,
    ssim,
)

__all__ = [
    "PSNR_CAP",
    "SampleScore",
    "match_reconstructions",
    "mse",
    "psnr",
    "psnr_matrix",
    "score_reconstructions",
    "ssim",
]
