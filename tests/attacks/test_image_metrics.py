"""Image metrics: hand-computed PSNR/MSE, SSIM bounds, Hungarian matching."""

from __future__ import annotations

import math

import numpy as np
import torch

from attacks.metrics import PSNR_CAP, match_reconstructions, mse, psnr, psnr_matrix, score_reconstructions, ssim


def test_identical_images_have_infinite_psnr_capped_in_matrices():
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert psnr(image, image) == math.inf
    assert mse(image, image) == 0.0
    assert psnr_matrix(image[None], image[None])[0, 0] == PSNR_CAP
    assert ssim(image, image) == 1.0


def test_psnr_of_a_known_mse_is_ten_log_ten_of_its_inverse():
    a = np.full((3, 8, 8), 0.5)  # float64: float32 rounding would dominate at offset 0.01
    for offset in (0.1, 0.01, 0.25):
        b = a + offset
        assert math.isclose(mse(a, b), offset**2, rel_tol=1e-6)
        assert math.isclose(psnr(a, b), 10 * math.log10(1 / offset**2), rel_tol=1e-6)


def test_ssim_drops_for_noise_and_stays_in_bounds():
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(3, 32, 32, generator=generator)
    noisy = (image + 0.3 * torch.randn(3, 32, 32, generator=generator)).clamp(0, 1)
    value = ssim(image, noisy)
    assert -1.0 <= value < 0.9


def test_hungarian_matching_recovers_a_permutation():
    generator = torch.Generator().manual_seed(2)
    originals = torch.rand(6, 3, 8, 8, generator=generator)
    permutation = [3, 0, 5, 1, 4, 2]
    reconstructions = (originals[permutation] + 0.02 * torch.randn(6, 3, 8, 8, generator=generator)).clamp(0, 1)
    pairs = dict(match_reconstructions(reconstructions, originals))
    assert [pairs[i] for i in range(6)] == permutation


def test_greedy_would_fail_where_hungarian_succeeds():
    """Rec 0 is closest to orig 0 but rec 1 can only match orig 0 well: the optimum swaps."""
    originals = np.stack([np.full((1, 4, 4), 0.5), np.full((1, 4, 4), 0.0)])
    reconstructions = np.stack([np.full((1, 4, 4), 0.3), np.full((1, 4, 4), 0.55)])
    assert sorted(match_reconstructions(reconstructions, originals)) == [(0, 1), (1, 0)]


def test_score_rows_follow_the_originals_and_report_labels():
    generator = torch.Generator().manual_seed(3)
    originals = torch.rand(3, 3, 8, 8, generator=generator)
    rows = score_reconstructions(originals[[2, 0, 1]], originals, ["a", "b", "c"], [0, 1, 1], predicted_labels=[1, 0, 1])
    assert [r.sample_id for r in rows] == ["a", "b", "c"]
    assert [r.reconstruction_index for r in rows] == [1, 2, 0]
    assert [r.predicted_label for r in rows] == [0, 1, 1]
    assert all(r.psnr == math.inf and r.mse == 0.0 for r in rows)
