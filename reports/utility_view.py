"""Utility: did the models learn, beside the local and centralized baselines, and at what cost?

The first screen's table gives each arm's accuracy (with its interval over the test
images), balanced accuracy and AUC, flags a model that predicts one class, and the bytes
sent per round. Further down, the privacy-utility figure sets accuracy against each
position's familywise leakage figure, and, when the study has DP arms, the trade-off is a
curve over epsilon beside the run without DP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reports import figures, fmt
from reports.images import png_data_uri
from reports.summary import ArmSummary, StudySummary
from reports.verdict import POSITIONS


@dataclass
class UtilityRow:
    label: str
    role: str  # "arm" | "baseline"
    judged: str
    accuracy: str
    balanced_accuracy: str
    auc: str
    one_class: bool
    per_round: str
    dp: str


@dataclass
class UtilityView:
    rows: list[UtilityRow]
    n_test: int | None
    #: which model each scheme is judged by, in one sentence
    judged: str = ""
    any_dp: bool = False
    tradeoff_uri: str | None = None
    dp_curve_uri: str | None = None
    notes: list[str] = field(default_factory=list)


def _per_round(arm: ArmSummary) -> str:
    if arm.algorithm == "local":
        return "nothing sent"
    if arm.algorithm == "centralized":
        return "images pooled once"
    total = arm.bytes_per_round
    if total is None:
        return "not measured"
    if arm.bytes_up_per_round is not None and arm.bytes_down_per_round is not None:
        return f"{fmt.human_bytes(total)} ({fmt.human_bytes(arm.bytes_up_per_round)} up)"
    return fmt.human_bytes(total)


def row(arm: ArmSummary) -> UtilityRow:
    u = arm.utility
    return UtilityRow(arm.label, "baseline" if arm.baseline else "arm", u.source or "—",
                      fmt.pct_ci(u.accuracy, u.accuracy_ci), fmt.pct(u.balanced_accuracy) if u.balanced_accuracy is not None
                      else fmt.NOT_MEASURED, fmt.num(u.auc, 2) if u.auc is not None else fmt.NOT_MEASURED,
                      u.predicts_one_class, _per_round(arm), fmt.epsilon(arm.epsilon, arm.dp_level))


def chance_accuracy(summary: StudySummary) -> float | None:
    """A uniform random guess is right 1/K of the time, whatever the class mix."""
    k = summary.setup.num_classes if summary.setup else None
    return 1.0 / k if k else None


def _points(arms: list[ArmSummary], kind: str) -> list[figures.TradeoffPoint]:
    out = []
    for arm in arms:
        u = arm.utility
        if u.accuracy is None:
            continue
        for position in POSITIONS:
            finding = arm.findings.get(position)
            found = finding.get(kind) if finding else None
            if found is not None:
                out.append(figures.TradeoffPoint(arm.label, position, u.accuracy, u.accuracy_ci, found.value, found.ci))
    return out


def tradeoff_uri(summary: StudySummary) -> str | None:
    arms = summary.main_arms
    inversion, membership = _points(arms, "inversion"), _points(arms, "membership")
    if not inversion and not membership:
        return None
    baselines = [(b.label, b.utility.accuracy) for b in summary.baselines if b.utility.accuracy is not None]
    return png_data_uri(figures.privacy_utility_figure(inversion, membership, chance_accuracy(summary), baselines))


def _dp_point(arm: ArmSummary) -> figures.DpPoint:
    realistic = arm.findings.get("realistic")
    inversion = realistic.get("inversion") if realistic else None
    membership = realistic.get("membership") if realistic else None
    epsilon = arm.epsilon if arm.epsilon is not None else arm.target_epsilon
    return figures.DpPoint(epsilon if arm.is_dp else None, arm.utility.accuracy, arm.utility.accuracy_ci,
                           membership.value if membership else None, membership.ci if membership else None,
                           inversion.value if inversion else None, inversion.ci if inversion else None)


def dp_curve_uri(summary: StudySummary) -> str | None:
    """One curve per scheme (FedAvg, partial, ...): its DP arms plus its run without DP."""
    if not summary.dp_arms:
        return None
    curves: dict[str, figures.DpCurve] = {}
    for arm in summary.arms:
        name = arm.label.split(" + ")[0]
        curves.setdefault(name, figures.DpCurve(name)).points.append(_dp_point(arm))
    return png_data_uri(figures.dp_curve_figure(list(curves.values()), chance_accuracy(summary)))


def build(summary: StudySummary) -> UtilityView:
    view = UtilityView([row(a) for a in summary.everything],
                       next((a.utility.n_test for a in summary.everything if a.utility.n_test), None))
    view.any_dp = any(a.is_dp for a in summary.everything)
    view.tradeoff_uri = tradeoff_uri(summary)
    view.dp_curve_uri = dp_curve_uri(summary)
    by_source: dict[str, list[str]] = {}
    for r in view.rows:
        if r.judged != "—":
            by_source.setdefault(r.judged, []).append(r.label)
    view.judged = "; ".join(f"{', '.join(labels)}: {source}" for source, labels in by_source.items())
    view.judged = f"Model judged: {view.judged}." if view.judged else ""
    if any(r.one_class for r in view.rows):
        view.notes.append("“predicts one class”: the model gives at least 98% of the test images the same class, "
                          "so its accuracy is the class mix, not learning.")
    return view
