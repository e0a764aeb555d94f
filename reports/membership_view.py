"""The membership-inference evidence of one arm: its table cells, the ROC figure and the audit.

The ROC figure draws a handful of named curves only (the strongest row of each method,
chosen in :mod:`reports.summary`) on log axes from the smallest false-positive rate the
non-members can resolve, with the chance line. The audit sets the claimed DP epsilon
beside the measured lower bound, saying "no DP" or "not measured" rather than a zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reports import figures, fmt
from reports.images import png_data_uri
from reports.load import as_dict, as_float, as_list
from reports.summary import ArmSummary


def cell_lines(row: dict[str, Any]) -> list[str]:
    """'AUC 0.53 [0.47, 0.60]' and 'TPR 2.0% at 1% FPR'."""
    lines = [f"AUC {fmt.auc_ci(row.get('auc'), row.get('auc_ci'))}"]
    if as_float(row.get("tpr_at_1pct_fpr")) is not None:
        lines.append(f"TPR {fmt.pct(row.get('tpr_at_1pct_fpr'))} at 1% FPR")
    return lines


def _model_words(model: Any) -> str:
    return "global model" if model == "global" else str(model).replace("client_", "client ")


def roc_uri(arm: ArmSummary) -> str | None:
    curves, nonmembers = [], []
    for row in arm.roc_rows:
        roc = as_dict(row.get("roc"))
        pairs = [(as_float(f), as_float(t)) for f, t in zip(as_list(roc.get("fpr")), as_list(roc.get("tpr")))]
        pairs = [(f, t) for f, t in pairs if f is not None and t is not None]
        if not pairs:
            continue
        label = (f"{row.get('method', '?')}, {_model_words(row.get('model'))}, knowledge {row.get('knowledge', '?')}"
                 f" (AUC {fmt.num(row.get('auc'), 2)})")
        curves.append(figures.RocCurve(label, [p[0] for p in pairs], [p[1] for p in pairs]))
        if as_float(row.get("n_nonmembers")):
            nonmembers.append(as_float(row.get("n_nonmembers")))
    if not curves:
        return None
    floor = 1.0 / max(nonmembers) if nonmembers else 1e-3
    return png_data_uri(figures.roc_figure(curves, floor=floor))


@dataclass
class Audit:
    """Claimed epsilon against the familywise lower bound the strongest membership attack measured."""

    claimed: str
    measured: str
    violated: bool
    note: str


def audit(arm: ArmSummary) -> Audit:
    bounds = [as_float(as_dict(b).get("epsilon_lower_bound")) for b in arm.membership_positions.values()]
    bounds = [b for b in bounds if b is not None]
    claimed = fmt.epsilon(arm.epsilon, arm.dp_level)
    if not bounds:
        return Audit(claimed, "not measured", False, "no membership attack on what the server receives")
    bound = max(bounds)
    measured = "none detected (lower bound 0)" if bound == 0 else f"at least {bound:.2f}"
    violated = arm.epsilon is not None and arm.is_dp and bound > arm.epsilon + 1e-9
    if violated:
        note = "the measured lower bound exceeds the claim: the DP guarantee does not hold as configured"
    elif arm.is_dp:
        note = "consistent: a lower bound below the claim cannot prove the claim tight"
    else:
        note = "a lower bound, not a guarantee: without DP nothing bounds the leak from above"
    return Audit(claimed, measured, violated, note)
