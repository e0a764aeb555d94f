"""How well membership scores separate members from non-members, and what that proves.

Everything here takes two plain arrays of scores (higher = "more likely a member") and
never sees a model, so no attack can grade itself. Figures follow the reporting advice of
Carlini et al., "Membership Inference Attacks From First Principles" (S&P 2022,
https://arxiv.org/abs/2112.03570): the whole ROC, its AUC, and above all the TPR at a low
FPR (1% and 0.1%), because an attack that is only good "on average" says little about the
patients it can single out.

The empirical epsilon turns the (TPR, FPR) pairs into a lower bound on the privacy loss,
as in Jagielski et al., "Auditing Differentially Private Machine Learning: How Private is
Private SGD?" (NeurIPS 2020, https://arxiv.org/abs/2006.07709) and Nasr et al.,
"Adversary Instantiation: Lower Bounds for Differentially Private Machine Learning"
(S&P 2021, https://arxiv.org/abs/2101.04535): an (epsilon, delta)-DP mechanism forces
``TPR <= e^eps * FPR + delta`` (and the same for the complementary test and with the two
datasets swapped) for every threshold, so each threshold gives
``eps >= log((TPR - delta) / FPR)``. Rates are replaced by their pessimistic
Clopper-Pearson bounds (lower bound above the fraction bar, upper bound below), and the
threshold is chosen on one half of the candidates and bounded on the other
(:func:`epsilon_lower_bound_from_scores`), so the bound errs low. Caveat, stated in every report: each candidate is one trial of one trained
model, not one trained model per trial, so this is the usual heuristic audit, not a proof.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import beta

#: Two-sided level of every interval (95%).
ALPHA = 0.05
#: FPR levels reported as TPR at fixed FPR.
LOW_FPRS = (0.01, 0.001)
#: Largest number of points kept in a stored ROC.
MAX_ROC_POINTS = 200


@dataclass(frozen=True)
class Roc:
    """Every operating point of "member iff score >= threshold", from (0, 0) to (1, 1).

    ``tp``/``fp`` are the counts behind ``tpr``/``fpr``; thresholds[0] is +inf.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_members: int
    n_nonmembers: int


def _clean(scores: np.ndarray | list[float]) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    # A NaN score carries no evidence of membership: rank it lowest.
    return np.where(np.isnan(values), -np.inf, values)


def roc_curve(member_scores, nonmember_scores) -> Roc:
    """ROC over all distinct thresholds; tied scores move TPR and FPR together."""
    members = _clean(member_scores)
    nonmembers = _clean(nonmember_scores)
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError("roc_curve needs at least one member and one non-member score")
    scores = np.concatenate([members, nonmembers])
    is_member = np.concatenate([np.ones(members.size, bool), np.zeros(nonmembers.size, bool)])
    order = np.argsort(-scores, kind="mergesort")
    scores, is_member = scores[order], is_member[order]
    tp = np.cumsum(is_member)
    fp = np.cumsum(~is_member)
    # keep the last index of each run of equal scores: a threshold admits all ties at once
    last = np.r_[scores[1:] != scores[:-1], True]
    tp = np.r_[0, tp[last]]
    fp = np.r_[0, fp[last]]
    thresholds = np.r_[np.inf, scores[last]]
    return Roc(
        fpr=fp / nonmembers.size,
        tpr=tp / members.size,
        thresholds=thresholds,
        tp=tp,
        fp=fp,
        n_members=int(members.size),
        n_nonmembers=int(nonmembers.size),
    )


def auc(roc: Roc) -> float:
    """Trapezoidal area; equals P(member score > non-member score) + 0.5 P(tie)."""
    return float(np.trapezoid(roc.tpr, roc.fpr))


def tpr_at_fpr(roc: Roc, max_fpr: float) -> tuple[float, int]:
    """Highest TPR among thresholds whose FPR is at most ``max_fpr``, and its index.

    With n non-members an FPR of 0.1% allows floor(0.001 n) false positives: with fewer
    than 1000 non-members that is zero, the strictest reading.
    """
    allowed = np.flatnonzero(roc.fpr <= max_fpr + 1e-12)
    index = int(allowed[np.argmax(roc.tpr[allowed])])
    return float(roc.tpr[index]), index


def balanced_accuracy(roc: Roc) -> float:
    """Best (TPR + TNR) / 2 over thresholds: the accuracy of the best single threshold on balanced data."""
    return float(np.max((roc.tpr + 1.0 - roc.fpr) / 2.0))


def clopper_pearson(successes, trials, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval (Clopper & Pearson 1934) at two-sided level ``alpha``.

    Vectorised over arrays of counts; the lower bound is 0 at k = 0 and the upper 1 at k = n.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return lo, hi


def _log_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    valid = (numerator > 0) & (denominator > 0)
    out = np.full(numerator.shape, -np.inf)
    out[valid] = np.log(numerator[valid] / denominator[valid])
    return out


def epsilon_lower_bound(roc: Roc, delta: float, alpha: float = ALPHA) -> float:
    """Largest epsilon the attack's (TPR, FPR) pairs rule out, floored at 0: a best-of-many.

    The maximum over every threshold and form, taken on the data it is computed on, is biased
    upwards (about 12% of null trials give > 0); results report
    :func:`epsilon_lower_bound_from_scores` instead, which chooses on one half and bounds on
    the other. This function picks the test there.

    For each threshold, with Clopper-Pearson bounds (lo, hi) on TPR and FPR:
    ``log((TPR_lo - delta) / FPR_hi)`` (guess "member" above the threshold),
    ``log((1 - FPR_hi - delta) / (1 - TPR_lo))`` (the complementary test: TNR vs FNR),
    and both again with members and non-members swapped. Every rate in a numerator is its
    lower bound and every rate in a denominator its upper bound, so the bound errs low.
    """
    candidates = _epsilon_candidates(roc.tp, roc.fp, roc.n_members, roc.n_nonmembers, delta, alpha)
    return float(max(0.0, np.max(candidates)))


def _epsilon_candidates(tp, fp, n_members: int, n_nonmembers: int, delta: float, alpha: float) -> np.ndarray:
    """(4, T) lower bounds on epsilon, one row per inequality form, one column per threshold."""
    tpr_lo, tpr_hi = clopper_pearson(tp, n_members, alpha)
    fpr_lo, fpr_hi = clopper_pearson(fp, n_nonmembers, alpha)
    return np.stack([
        _log_ratio(tpr_lo - delta, fpr_hi),
        _log_ratio(1.0 - fpr_hi - delta, 1.0 - tpr_lo),
        _log_ratio(fpr_lo - delta, tpr_hi),
        _log_ratio(1.0 - tpr_hi - delta, 1.0 - fpr_lo),
    ])


def epsilon_lower_bound_from_scores(member_scores, nonmember_scores, delta: float, seed: int = 0, alpha: float = ALPHA) -> float:
    """An empirical epsilon lower bound that is one: the threshold is never chosen on the data it bounds.

    Members and non-members are each split at random (``seed``) into a selection half and an
    evaluation half. On the selection half the threshold and the inequality form (the four of
    :func:`epsilon_lower_bound`) with the largest Clopper-Pearson bound are chosen; that one
    test is then bounded on the evaluation half at level ``alpha``. Taking the best of every
    threshold on the same data, as :func:`epsilon_lower_bound` does, reports epsilon > 0 on
    scores that carry no membership signal in about one trial in eight; this bound does so
    in at most ``alpha`` of them (tested on 500 null trials).
    """
    members, nonmembers = _clean(member_scores), _clean(nonmember_scores)
    if members.size < 2 or nonmembers.size < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(members.size), rng.permutation(nonmembers.size)
    m_select, m_eval = members[pm[: members.size // 2]], members[pm[members.size // 2 :]]
    n_select, n_eval = nonmembers[pn[: nonmembers.size // 2]], nonmembers[pn[nonmembers.size // 2 :]]
    roc = roc_curve(m_select, n_select)
    candidates = _epsilon_candidates(roc.tp, roc.fp, roc.n_members, roc.n_nonmembers, delta, alpha)
    form, index = np.unravel_index(int(np.argmax(candidates)), candidates.shape)
    if not np.isfinite(candidates[form, index]):
        return 0.0
    threshold = roc.thresholds[index]
    tp = np.array([np.count_nonzero(m_eval >= threshold)])
    fp = np.array([np.count_nonzero(n_eval >= threshold)])
    bound = _epsilon_candidates(tp, fp, m_eval.size, n_eval.size, delta, alpha)[form, 0]
    return float(max(0.0, bound)) if np.isfinite(bound) else 0.0


def auc_delong_interval(member_scores, nonmember_scores, alpha: float = ALPHA) -> list[float]:
    """Normal interval of the AUC with DeLong et al.'s (1988) variance; cheap at any ``alpha``.

    Used where a bootstrap would need many thousands of resamples, e.g. familywise intervals
    at alpha / number of rows.
    """
    from scipy.stats import norm, rankdata

    members, nonmembers = _clean(member_scores), _clean(nonmember_scores)
    m, n = members.size, nonmembers.size
    both = rankdata(np.concatenate([members, nonmembers]))
    v10 = (both[:m] - rankdata(members)) / n  # per member: share of non-members below it (ties 1/2)
    v01 = 1.0 - (both[m:] - rankdata(nonmembers)) / m  # per non-member: share of members above it
    value = float(v10.mean())
    variance = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = float(norm.ppf(1 - alpha / 2)) * math.sqrt(max(variance, 0.0))
    return [max(0.0, value - half), min(1.0, value + half)]


def downsample_roc(roc: Roc, max_points: int = MAX_ROC_POINTS) -> dict[str, list[float]]:
    """At most ``max_points`` ROC points for plotting on a log-FPR axis.

    Points are picked on a grid that is logarithmic in FPR below 10% (where low-FPR
    attacks differ) and linear above; at each grid value we keep the best TPR reachable at
    that FPR, so the stored curve never overstates the attack.
    """
    fpr, tpr = roc.fpr, roc.tpr
    if fpr.size <= max_points:
        return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}
    smallest = 1.0 / max(roc.n_nonmembers, 1)
    n_log = (max_points - 2) * 3 // 4
    n_lin = max_points - 2 - n_log
    grid = np.unique(
        np.concatenate(
            [
                [0.0],
                np.geomspace(smallest, 0.1, n_log) if smallest < 0.1 else [],
                np.linspace(0.1, 1.0, n_lin + 1),
            ]
        )
    )
    # fpr is non-decreasing: the last point with fpr <= g has the best tpr at that fpr
    index = np.searchsorted(fpr, grid + 1e-12, side="right") - 1
    index = np.unique(np.r_[0, index[index >= 0], fpr.size - 1])[:max_points]
    return {"fpr": [float(v) for v in fpr[index]], "tpr": [float(v) for v in tpr[index]]}


@dataclass
class MembershipMetrics:
    """The figures of one attack on one model; field names are those of docs/run-directory.md."""

    n_members: int
    n_nonmembers: int
    auc: float
    auc_ci: list[float]
    tpr_at_1pct_fpr: float
    tpr_at_1pct_fpr_ci: list[float]
    tpr_at_01pct_fpr: float
    tpr_at_01pct_fpr_ci: list[float]
    balanced_accuracy: float
    balanced_accuracy_ci: list[float]
    epsilon_lower_bound: float
    delta: float
    roc: dict[str, list[float]] = field(default_factory=dict)
    interval_method: str = "bootstrap (auc, balanced_accuracy); clopper-pearson (tpr_at_fpr)"

    def to_dict(self) -> dict:
        return asdict(self)


def _bootstrap(members: np.ndarray, nonmembers: np.ndarray, n_bootstrap: int, alpha: float, seed: int):
    """Percentile intervals of AUC and balanced accuracy, resampling each side separately."""
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_bootstrap)
    accs = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        roc = roc_curve(
            members[rng.integers(0, members.size, members.size)],
            nonmembers[rng.integers(0, nonmembers.size, nonmembers.size)],
        )
        aucs[b], accs[b] = auc(roc), balanced_accuracy(roc)
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    return [float(v) for v in np.percentile(aucs, q)], [float(v) for v in np.percentile(accs, q)]


def evaluate_membership(
    member_scores,
    nonmember_scores,
    *,
    delta: float,
    n_bootstrap: int = 200,
    alpha: float = ALPHA,
    seed: int = 0,
    max_roc_points: int = MAX_ROC_POINTS,
) -> MembershipMetrics:
    """All reported figures for one set of scores; deterministic for a given ``seed``."""
    members, nonmembers = _clean(member_scores), _clean(nonmember_scores)
    roc = roc_curve(members, nonmembers)
    auc_ci, acc_ci = _bootstrap(members, nonmembers, n_bootstrap, alpha, seed) if n_bootstrap > 0 else ([math.nan] * 2,) * 2
    tprs = {}
    for level in LOW_FPRS:
        value, index = tpr_at_fpr(roc, level)
        lo, hi = clopper_pearson(roc.tp[index], roc.n_members, alpha)
        tprs[level] = (value, [float(lo), float(hi)])
    return MembershipMetrics(
        n_members=roc.n_members,
        n_nonmembers=roc.n_nonmembers,
        auc=auc(roc),
        auc_ci=auc_ci,
        tpr_at_1pct_fpr=tprs[0.01][0],
        tpr_at_1pct_fpr_ci=tprs[0.01][1],
        tpr_at_01pct_fpr=tprs[0.001][0],
        tpr_at_01pct_fpr_ci=tprs[0.001][1],
        balanced_accuracy=balanced_accuracy(roc),
        balanced_accuracy_ci=acc_ci,
        epsilon_lower_bound=epsilon_lower_bound_from_scores(members, nonmembers, delta, seed=seed, alpha=alpha),
        delta=float(delta),
        roc=downsample_roc(roc, max_roc_points),
    )


__all__ = [
    "ALPHA",
    "LOW_FPRS",
    "MAX_ROC_POINTS",
    "MembershipMetrics",
    "Roc",
    "auc",
    "balanced_accuracy",
    "clopper_pearson",
    "downsample_roc",
    "auc_delong_interval",
    "epsilon_lower_bound",
    "epsilon_lower_bound_from_scores",
    "evaluate_membership",
    "roc_curve",
    "tpr_at_fpr",
]
