"""One computed summary of a study, from its run directories; every view of the report renders it.

The first screen (the answer), the evidence tables and the details all read the same
:class:`StudySummary`, so they cannot disagree. It holds, per arm: utility (accuracy beside
balanced accuracy, AUC and whether the model predicts one class), communication, the
target the server really receives (the whole model for FedAvg-type runs, the shared layer
for partial: the arm's headline) and, per attacker position, the strongest attack's
familywise figures as the attack runners wrote them (``positions`` in each attack file).
Local and centralized runs are baselines: shown beside the arms, never attacked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reports.load import AttackFile, RunData, as_dict, as_float, as_list
from reports.verdict import POSITIONS, ArmFindings, Finding, study_answer

BASELINE_ALGORITHMS = ("local", "centralized")
FULL_MODEL_ALGORITHMS = ("fedavg", "fedprox", "fednova")
#: a model giving at least this share of the test images one class "predicts one class"
ONE_CLASS_SHARE = 0.98


@dataclass
class Utility:
    """Test figures of the model an arm is judged by (None where the run has none)."""

    accuracy: float | None
    balanced_accuracy: float | None
    auc: float | None
    majority_share: float | None
    source: str  # "global model", "server model", "mean of the clients' models"

    @property
    def predicts_one_class(self) -> bool:
        return self.majority_share is not None and self.majority_share >= ONE_CLASS_SHARE


@dataclass
class ArmSummary:
    label: str
    run: RunData
    utility: Utility
    bytes_up_per_round: float | None
    bytes_down_per_round: float | None
    baseline: bool = False
    dp_level: str = "none"
    epsilon: float | None = None
    delta: float | None = None
    neighbouring: str | None = None
    headline_target: str | None = None
    #: position -> the verdict's inputs (headline target only)
    findings: dict[str, ArmFindings] = field(default_factory=dict)
    #: position -> raw familywise blocks of the headline files (images, n, rows, alpha)
    inversion_positions: dict[str, dict] = field(default_factory=dict)
    membership_positions: dict[str, dict] = field(default_factory=dict)
    other_targets: list[str] = field(default_factory=list)

    @property
    def algorithm(self) -> str:
        return self.run.algorithm

    @property
    def folder(self) -> str:
        return self.run.path.name

    @property
    def train_command(self) -> str | None:
        command = self.run.config.get("command")
        return command if isinstance(command, str) else None

    @property
    def attack_commands(self) -> list[str]:
        out: list[str] = []
        for attack in self.run.inversion + self.run.membership:
            out += [c for c in attack.commands if c not in out]
        return out


@dataclass
class StudySummary:
    arms: list[ArmSummary]
    baselines: list[ArmSummary]
    #: (position, sentence), realistic first
    answer: list[tuple[str, str]]

    @property
    def everything(self) -> list[ArmSummary]:
        return self.arms + self.baselines


def utility_of(run: RunData) -> Utility:
    """The global model for full-model and centralized runs; the clients' own models otherwise.

    Partial aggregation and local training leave each hospital with its own model, so those
    arms are judged by the mean of the clients' test figures (the server model is shown in
    the details).
    """
    source = run.summary if run.summary is not None else (run.metrics[-1] if run.metrics else {})

    def figures(prefix: str) -> list[float | None]:
        return [as_float(source.get(f"{prefix}test_{name}")) for name in ("accuracy", "balanced_accuracy", "auc", "majority_share")]

    if run.algorithm in FULL_MODEL_ALGORITHMS + ("centralized",) and as_float(source.get("global_test_accuracy")) is not None:
        return Utility(*figures("global_"), "global model")
    mean = figures("mean_client_")
    if mean[0] is None:  # an unfinished run: average the last round's client rows
        rows = [c for c in as_list(source.get("clients")) if isinstance(c, dict)]
        for i, name in enumerate(("accuracy", "balanced_accuracy", "auc", "majority_share")):
            values = [as_float(c.get(f"test_{name}")) for c in rows]
            values = [v for v in values if v is not None]
            mean[i] = sum(values) / len(values) if values else None
    if mean[0] is not None:
        return Utility(*mean, "mean of the clients' models")
    server = figures("server_")
    return Utility(*server, "server model") if server[0] is not None else Utility(None, None, None, None, "")


def _per_round(run: RunData, key: str) -> float | None:
    values = [as_float(m.get(key)) for m in run.metrics]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def headline_target(run: RunData) -> str | None:
    """What the server really receives from this arm."""
    if run.algorithm in BASELINE_ALGORITHMS:
        return None
    return "full-model" if run.algorithm in FULL_MODEL_ALGORITHMS else "shared-layer"


def _interval(value: Any) -> tuple[float, float] | None:
    items = as_list(value)
    if len(items) == 2 and as_float(items[0]) is not None and as_float(items[1]) is not None:
        return (as_float(items[0]), as_float(items[1]))
    return None


def inversion_finding(block: dict) -> Finding | None:
    gain = as_float(block.get("gain_db"))
    if gain is None:
        return None
    return Finding("inversion", str(block.get("method", "?")), str(block.get("knowledge", "?")), gain,
                   _interval(block.get("gain_db_ci")), as_float(block.get("identification_top1")),
                   _interval(block.get("identification_top1_ci")), as_float(block.get("null_identification_top1")),
                   _interval(block.get("null_identification_top1_ci")), block.get("leaks") is True)


def membership_finding(block: dict) -> Finding | None:
    auc = as_float(block.get("auc"))
    if auc is None:
        return None
    return Finding("membership", str(block.get("method", "?")), str(block.get("knowledge", "?")), auc,
                   _interval(block.get("auc_ci")), leaks=block.get("leaks") is True)


def _headline_file(files: Sequence[AttackFile], target: str | None) -> AttackFile | None:
    return next((f for f in files if f.target == target), None)


def arm_summary(run: RunData, label: str) -> ArmSummary:
    summary = run.summary or {}
    target = headline_target(run)
    arm = ArmSummary(
        label=label, run=run, utility=utility_of(run),
        bytes_up_per_round=_per_round(run, "bytes_up"), bytes_down_per_round=_per_round(run, "bytes_down"),
        baseline=run.algorithm in BASELINE_ALGORITHMS, dp_level=run.dp_level,
        epsilon=as_float(summary.get("epsilon")), delta=as_float(summary.get("delta")),
        neighbouring=summary.get("dp_neighbouring") if isinstance(summary.get("dp_neighbouring"), str) else None,
        headline_target=target,
    )
    inversion = _headline_file(run.inversion, target)
    membership = _headline_file(run.membership, target)
    arm.inversion_positions = {p: as_dict(b) for p, b in as_dict(inversion.positions if inversion else {}).items()}
    arm.membership_positions = {p: as_dict(b) for p, b in as_dict(membership.positions if membership else {}).items()}
    for position in POSITIONS:
        found = [f for f in (inversion_finding(arm.inversion_positions.get(position, {})),
                             membership_finding(arm.membership_positions.get(position, {}))) if f is not None]
        arm.findings[position] = ArmFindings(label, found)
    arm.other_targets = sorted({f.target for f in run.inversion + run.membership} - {target})
    return arm


def summarize(runs: Sequence[RunData], labels: Sequence[str]) -> StudySummary:
    arms, baselines = [], []
    for run, label in zip(runs, labels):
        arm = arm_summary(run, label)
        (baselines if arm.baseline else arms).append(arm)
    positions = {p: [arm.findings[p] for arm in arms] for p in POSITIONS}
    return StudySummary(arms, baselines, study_answer(positions))
