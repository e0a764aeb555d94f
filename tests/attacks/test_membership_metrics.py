"""Membership metrics against hand-computed answers and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta

from attacks.metrics.membership import (
    auc,
    balanced_accuracy,
    clopper_pearson,
    downsample_roc,
    auc_delong_interval,
    epsilon_lower_bound,
    epsilon_lower_bound_from_scores,
    evaluate_membership,
    roc_curve,
    tpr_at_fpr,
)


def test_auc_perfect_and_reversed():
    assert auc(roc_curve([5, 6, 7], [1, 2, 3])) == 1.0
    assert auc(roc_curve([1, 2, 3], [5, 6, 7])) == 0.0


def test_auc_with_ties_is_half_credit():
    # one member-nonmember pair tied, the other member wins: (1 + 0.5) / 2
    assert auc(roc_curve([1.0, 2.0], [1.0])) == pytest.approx(0.75)
    assert auc(roc_curve([3.0] * 4, [3.0] * 5)) == pytest.approx(0.5)


def test_auc_equals_mann_whitney_on_random_scores():
    rng = np.random.default_rng(0)
    m, n = rng.normal(0.5, 1, 37).round(1), rng.normal(0, 1, 41).round(1)
    pairs = (m[:, None] > n[None, :]).mean() + 0.5 * (m[:, None] == n[None, :]).mean()
    assert auc(roc_curve(m, n)) == pytest.approx(pairs)


def test_tpr_at_fpr_hand_computed():
    members = [0.9, 0.8, 0.7, 0.3]
    nonmembers = [0.85, 0.2, 0.1, 0.05]
    roc = roc_curve(members, nonmembers)
    # FPR 0: only thresholds above 0.85 -> one member (0.9) -> TPR 1/4
    assert tpr_at_fpr(roc, 0.0)[0] == 0.25
    # FPR <= 1/4: threshold 0.3 admits 0.85 only -> TPR 4/4
    assert tpr_at_fpr(roc, 0.25)[0] == 1.0
    assert tpr_at_fpr(roc, 0.2)[0] == 0.25
    # best threshold 0.3: TPR 1, TNR 3/4
    assert balanced_accuracy(roc) == pytest.approx(0.875)


def test_clopper_pearson_matches_beta_quantiles():
    lo, hi = clopper_pearson(7, 20, 0.05)
    assert lo == pytest.approx(beta.ppf(0.025, 7, 14))
    assert hi == pytest.approx(beta.ppf(0.975, 8, 13))
    lo0, hi0 = clopper_pearson(0, 10)
    assert lo0 == 0.0 and hi0 == pytest.approx(1 - 0.025 ** (1 / 10))
    lo1, hi1 = clopper_pearson(10, 10)
    assert hi1 == 1.0 and lo1 == pytest.approx(0.025 ** (1 / 10))


def test_epsilon_zero_when_scores_identical():
    scores = np.linspace(0, 1, 50)
    assert epsilon_lower_bound(roc_curve(scores, scores), delta=1e-5) == 0.0
    assert epsilon_lower_bound(roc_curve([1.0] * 30, [1.0] * 30), delta=1e-5) == 0.0


def test_epsilon_bound_hand_computed_and_pessimistic():
    # 1000 members all above, 1000 non-members all below: at the separating threshold
    # TP = 1000, FP = 0 -> TPR_lo = 0.025^(1/1000), FPR_hi = 1 - 0.025^(1/1000)
    roc = roc_curve(np.ones(1000), np.zeros(1000))
    q = 0.025 ** (1 / 1000)
    expected = math.log((q - 1e-5) / (1 - q))
    assert epsilon_lower_bound(roc, delta=1e-5) == pytest.approx(expected)
    # the pessimistic bound stays below the point estimate for a moderate attack
    rng = np.random.default_rng(1)
    roc = roc_curve(rng.normal(1, 1, 2000), rng.normal(0, 1, 2000))
    valid = (roc.fpr > 0) & (roc.tpr > 0)
    point = np.max(np.log(roc.tpr[valid] / roc.fpr[valid]))
    assert 0 < epsilon_lower_bound(roc, delta=0.0) < point


def test_epsilon_symmetric_for_reversed_scores():
    m, n = np.ones(200), np.zeros(200)
    assert epsilon_lower_bound(roc_curve(m, n), 1e-5) == pytest.approx(epsilon_lower_bound(roc_curve(n, m), 1e-5))


def test_downsample_keeps_low_fpr_and_endpoints():
    rng = np.random.default_rng(2)
    roc = roc_curve(rng.normal(1, 1, 3000), rng.normal(0, 1, 3000))
    small = downsample_roc(roc, 200)
    assert len(small["fpr"]) <= 200
    assert small["fpr"][0] == 0.0 and small["fpr"][-1] == 1.0 and small["tpr"][-1] == 1.0
    assert np.all(np.diff(small["fpr"]) >= 0) and np.all(np.diff(small["tpr"]) >= 0)
    # the log grid keeps every distinct FPR below 1% (3000 non-members: 0/3000 .. 29/3000)
    assert len({f for f in small["fpr"] if f < 0.01}) == len(np.unique(roc.fpr[roc.fpr < 0.01])) == 30
    # each kept point after the (0, 0) anchor is the best TPR at its FPR
    for f, t in zip(small["fpr"][1:], small["tpr"][1:]):
        assert t == roc.tpr[roc.fpr <= f].max()


def test_evaluate_is_deterministic_and_bounded():
    rng = np.random.default_rng(3)
    m, n = rng.normal(1, 1, 300), rng.normal(0, 1, 300)
    a = evaluate_membership(m, n, delta=1e-5, seed=4, n_bootstrap=50)
    b = evaluate_membership(m, n, delta=1e-5, seed=4, n_bootstrap=50)
    assert a == b
    assert a.auc_ci[0] <= a.auc <= a.auc_ci[1]
    assert a.tpr_at_1pct_fpr_ci[0] <= a.tpr_at_1pct_fpr <= a.tpr_at_1pct_fpr_ci[1]
    assert 0.5 <= a.balanced_accuracy <= 1 and a.n_members == 300
    assert 0.7 < a.auc < 0.83  # Phi(1/sqrt 2) = 0.76


def test_split_half_bound_is_a_lower_bound_on_scores_without_signal():
    """The study issue's null test: 500 independent trials, 500 members per side, true epsilon 0."""
    rng = np.random.default_rng(2024)
    bounds = [
        epsilon_lower_bound_from_scores(rng.normal(size=500), rng.normal(size=500), delta=1e-5, seed=trial)
        for trial in range(500)
    ]
    assert np.mean(np.asarray(bounds) > 0) <= 0.05
    # the best-of-all-thresholds bound on the same data alarms far more often (why it is not reported)
    rng = np.random.default_rng(2024)
    biased = [epsilon_lower_bound(roc_curve(rng.normal(size=500), rng.normal(size=500)), 1e-5) for _ in range(200)]
    assert np.mean(np.asarray(biased) > 0) > 0.05


def test_split_half_bound_stays_below_a_known_epsilon_and_finds_it():
    """Randomised response with epsilon 1: a member answers 1 with probability e/(1+e), a non-member 1/(1+e).

    Any test on these answers has TPR <= e^1 FPR, so a valid 95% bound exceeds 1 in at most 5% of
    trials, and with 4000 per side it is well above 0.
    """
    eps, n = 1.0, 4000
    p = math.exp(eps) / (1 + math.exp(eps))
    bounds = []
    for trial in range(40):
        rng = np.random.default_rng(trial)
        members = (rng.random(n) < p).astype(float)
        nonmembers = (rng.random(n) < 1 - p).astype(float)
        bounds.append(epsilon_lower_bound_from_scores(members, nonmembers, delta=0.0, seed=trial))
    assert np.mean(np.asarray(bounds) > eps) <= 0.05 and np.median(bounds) > 0.7


def test_delong_interval_covers_the_true_auc():
    """Scores N(1, 1) against N(0, 1): AUC = Phi(1 / sqrt 2); 95% intervals cover it in about 95% of trials."""
    from scipy.stats import norm

    truth = norm.cdf(1 / math.sqrt(2))
    rng = np.random.default_rng(7)
    covered = []
    for _ in range(300):
        lo, hi = auc_delong_interval(rng.normal(1, 1, 150), rng.normal(0, 1, 150))
        covered.append(lo <= truth <= hi)
    assert 0.91 <= np.mean(covered) <= 0.99
    lo, hi = auc_delong_interval(rng.normal(1, 1, 150), rng.normal(0, 1, 150), alpha=0.05 / 20)
    wide_lo, wide_hi = lo, hi
    lo, hi = auc_delong_interval(rng.normal(1, 1, 150), rng.normal(0, 1, 150))
    assert wide_hi - wide_lo > 1.3 * (hi - lo)  # a familywise level widens it (z 3.02 against 1.96)
