"""Side-by-side comparison of runs and the plain-language verdict.

Each run is reduced to one :class:`ComparisonRow` of headline figures: utility (accuracy),
cost (bytes per round) and leakage, where leakage is the *worst case over every attack
and knowledge level* found in the run (best reconstruction PSNR/SSIM, strongest
membership AUC and TPR at 0.1% FPR), because a privacy claim must hold against the
strongest attacker measured, not the average one. The verdict compares every run with the
first one given (the reference) and only calls a difference when it exceeds a small
tolerance or, for membership figures with confidence intervals, when the intervals do not
overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reports.load import RunData, as_float, as_list

#: Differences below these are reported as "about the same".
PSNR_TOL_DB = 0.5
SSIM_TOL = 0.02
AUC_TOL = 0.01
TPR_TOL = 0.005
ACCURACY_TOL = 0.0005  # 0.05 percentage points


@dataclass
class ComparisonRow:
    """Headline figures of one run (None where the run has no such figure)."""

    label: str
    algorithm: str
    dp_level: str
    accuracy: float | None = None
    accuracy_source: str = ""
    bytes_per_round: float | None = None
    best_psnr: float | None = None
    best_ssim: float | None = None
    baseline_psnr: float | None = None  # the server's mean image as the guess: leakage starts above it
    mia_auc: float | None = None
    mia_auc_ci: tuple[float, float] | None = None
    tpr_at_01pct_fpr: float | None = None
    tpr_at_01pct_fpr_ci: tuple[float, float] | None = None
    epsilon_claimed: float | None = None
    epsilon_measured: float | None = None

    @property
    def epsilon_violated(self) -> bool:
        """True when the measured lower bound exceeds the claimed epsilon: the DP claim is wrong."""
        return (self.epsilon_claimed is not None and self.epsilon_measured is not None
                and self.epsilon_measured > self.epsilon_claimed + 1e-9)


def base_label(run: RunData) -> str:
    """'fedavg', 'fedavg+DP' (sample-level DP) or 'fedavg+DP(client)'."""
    level = run.dp_level
    if level in ("none", "", "None"):
        return run.algorithm
    return f"{run.algorithm}+DP" if level == "sample" else f"{run.algorithm}+DP({level})"


def run_labels(runs: Sequence[RunData]) -> list[str]:
    """Short unique labels; runs that would share one get their folder name appended."""
    labels = [base_label(r) for r in runs]
    return [f"{lab} ({r.path.name})" if labels.count(lab) > 1 else lab for lab, r in zip(labels, runs)]


def _interval(value: object) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = as_float(value[0]), as_float(value[1])
        if lo is not None and hi is not None:
            return (lo, hi)
    return None


def _max(values) -> float | None:
    finite = [v for v in values if v is not None]
    return max(finite) if finite else None


def final_accuracy(run: RunData) -> tuple[float | None, str]:
    """(accuracy, where it comes from): the global model's, else the mean of the clients'.

    Full-model algorithms are judged by the global model; partial and local-only runs keep
    private client models, so their utility is the mean client accuracy.
    """
    source = run.summary if run.summary is not None else (run.metrics[-1] if run.metrics else {})
    global_acc = as_float(source.get("global_test_accuracy"))
    if global_acc is not None:
        return global_acc, "global"
    mean = as_float(source.get("mean_client_test_accuracy"))
    if mean is None:
        accs = [as_float(c.get("test_accuracy")) for c in as_list(source.get("clients")) if isinstance(c, dict)]
        accs = [a for a in accs if a is not None]
        mean = sum(accs) / len(accs) if accs else None
    if mean is not None:
        return mean, "mean client"
    server = as_float(source.get("server_test_accuracy"))
    return (server, "server") if server is not None else (None, "")


def bytes_per_round(run: RunData) -> float | None:
    if run.summary is not None and as_float(run.summary.get("bytes_per_round")) is not None:
        return as_float(run.summary.get("bytes_per_round"))
    totals = [(as_float(m.get("bytes_up")) or 0.0) + (as_float(m.get("bytes_down")) or 0.0) for m in run.metrics]
    return sum(totals) / len(totals) if totals else None


def comparison_row(run: RunData, label: str) -> ComparisonRow:
    accuracy, source = final_accuracy(run)
    inversion = [r for f in run.inversion for r in f.results]
    membership = [r for f in run.membership for r in f.results]
    strongest = max(membership, key=lambda r: as_float(r.get("auc")) or float("-inf"), default=None)
    best_tpr = max(membership, key=lambda r: as_float(r.get("tpr_at_01pct_fpr")) or float("-inf"), default=None)
    claimed = as_float(run.summary.get("epsilon")) if run.summary else None
    if claimed is None:
        claimed = _max(as_float(r.get("epsilon_claimed")) for r in membership)
    return ComparisonRow(
        label=label,
        algorithm=run.algorithm,
        dp_level=run.dp_level,
        accuracy=accuracy,
        accuracy_source=source,
        bytes_per_round=bytes_per_round(run),
        best_psnr=_max(_max([as_float(r.get("psnr_max")), as_float(r.get("psnr_mean"))]) for r in inversion),
        best_ssim=_max(_max([as_float(r.get("ssim_max")), as_float(r.get("ssim_mean"))]) for r in inversion),
        baseline_psnr=_max(as_float(r.get("baseline_psnr_mean")) for r in inversion),
        mia_auc=as_float(strongest.get("auc")) if strongest else None,
        mia_auc_ci=_interval(strongest.get("auc_ci")) if strongest else None,
        tpr_at_01pct_fpr=as_float(best_tpr.get("tpr_at_01pct_fpr")) if best_tpr else None,
        tpr_at_01pct_fpr_ci=_interval(best_tpr.get("tpr_at_01pct_fpr_ci")) if best_tpr else None,
        epsilon_claimed=claimed,
        epsilon_measured=_max(as_float(r.get("epsilon_lower_bound")) for r in membership),
    )


def _direction(a: float, b: float, tol: float, a_ci=None, b_ci=None) -> int:
    """+1 if a is clearly larger than b, -1 if clearly smaller, 0 if within tolerance/overlapping CIs."""
    if a_ci is not None and b_ci is not None and a_ci[0] <= b_ci[1] and b_ci[0] <= a_ci[1]:
        return 0
    if abs(a - b) <= tol:
        return 0
    return 1 if a > b else -1


def _leak_measures(a: ComparisonRow, b: ComparisonRow) -> list[tuple[int, str]]:
    """(direction, 'name a vs b') for each leakage figure both runs have."""
    out = []
    if a.best_psnr is not None and b.best_psnr is not None:
        baseline = _max([a.baseline_psnr, b.baseline_psnr])
        note = f" (no-attack baseline {baseline:.1f} dB)" if baseline is not None else ""
        out.append((_direction(a.best_psnr, b.best_psnr, PSNR_TOL_DB),
                    f"best reconstruction PSNR {a.best_psnr:.1f} dB vs {b.best_psnr:.1f} dB{note}"))
    if a.best_ssim is not None and b.best_ssim is not None:
        out.append((_direction(a.best_ssim, b.best_ssim, SSIM_TOL), f"best SSIM {a.best_ssim:.2f} vs {b.best_ssim:.2f}"))
    if a.mia_auc is not None and b.mia_auc is not None:
        out.append((_direction(a.mia_auc, b.mia_auc, AUC_TOL, a.mia_auc_ci, b.mia_auc_ci),
                    f"MIA AUC {a.mia_auc:.2f} vs {b.mia_auc:.2f}"))
    if a.tpr_at_01pct_fpr is not None and b.tpr_at_01pct_fpr is not None:
        out.append((_direction(a.tpr_at_01pct_fpr, b.tpr_at_01pct_fpr, TPR_TOL, a.tpr_at_01pct_fpr_ci, b.tpr_at_01pct_fpr_ci),
                    f"TPR at 0.1% FPR {100 * a.tpr_at_01pct_fpr:.1f}% vs {100 * b.tpr_at_01pct_fpr:.1f}%"))
    return out


def _accuracy_phrase(a: ComparisonRow, b: ComparisonRow) -> str:
    if a.accuracy is None or b.accuracy is None:
        return "with accuracy not available for both"
    points = 100 * (a.accuracy - b.accuracy)
    if abs(a.accuracy - b.accuracy) <= ACCURACY_TOL:
        return "at the same accuracy"
    return f"at {abs(points):.1f} points {'higher' if points > 0 else 'lower'} accuracy"


def verdict(a: ComparisonRow, b: ComparisonRow) -> str:
    """One sentence: did run ``a`` leak more or less than the reference ``b``, by how much, at what cost.

    >>> verdict(ComparisonRow("partial", "partial", "none", accuracy=0.88, best_psnr=14.2, mia_auc=0.52),
    ...         ComparisonRow("fedavg", "fedavg", "none", accuracy=0.911, best_psnr=31.5, mia_auc=0.61))
    'partial leaked less than fedavg: best reconstruction PSNR 14.2 dB vs 31.5 dB, MIA AUC 0.52 vs 0.61, at 3.1 points lower accuracy.'
    """
    measures = _leak_measures(a, b)
    if not measures:
        return (f"{a.label} and {b.label} cannot be compared for leakage: no attack was measured on both "
                f"(run 'privfed attack' on each); {a.label} ran {_accuracy_phrase(a, b)}.")
    more = sum(1 for d, _ in measures if d > 0)
    less = sum(1 for d, _ in measures if d < 0)
    if more and not less:
        how = "leaked more than"
    elif less and not more:
        how = "leaked less than"
    elif not more and not less:
        how = "leaked about as much as"
    else:
        how = "leaked more on some measures and less on others than"
    details = ", ".join(text for _, text in measures)
    return f"{a.label} {how} {b.label}: {details}, {_accuracy_phrase(a, b)}."


def verdicts(rows: Sequence[ComparisonRow]) -> list[str]:
    """Every run against the first (the reference), in input order."""
    if len(rows) < 2:
        return []
    return [verdict(row, rows[0]) for row in rows[1:]]
