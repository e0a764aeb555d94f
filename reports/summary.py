"""One computed summary of a study, from its run directories; every view of the report renders it.

The first screen (the answer), the evidence tables and the details all read the same
:class:`StudySummary`, so they cannot disagree. It holds, per arm: utility (accuracy beside
balanced accuracy, AUC and whether the model predicts one class), communication, the
target the server really receives (the whole model for FedAvg-type runs, the shared layer
for partial: the arm's headline) and, per attacker position, the strongest attack's
familywise figures as the attack runners wrote them (``positions`` in each attack file).
Local and centralized runs are baselines: shown beside the arms, never attacked.

It also carries what the views draw, computed once here: the per-row evidence table of each
arm (:mod:`reports.evidence`), the one reconstruction the first screen shows per arm, the
handful of ROC curves worth drawing, the study's set-up in words, and the DP arms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reports import setup_words
from reports.evidence import EvidenceTable, evidence_table
from reports.load import AttackFile, RunData, as_dict, as_float, as_list
from reports.verdict import POSITIONS, ArmFindings, Finding, carry_up, study_answer

BASELINE_ALGORITHMS = ("local", "centralized")
FULL_MODEL_ALGORITHMS = ("fedavg", "fedprox", "fednova")
#: a model giving at least this share of the test images one class "predicts one class"
ONE_CLASS_SHARE = 0.98
#: ROC curves drawn per arm (the strongest row of each method): more would be unreadable
MAX_ROC_CURVES = 5
#: positions a real server can reach; the first screen's picture comes from one of these
SERVER_POSITIONS = ("realistic", "worst-case")


def wilson_interval(share: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion observed on ``n`` items (test accuracy).

    >>> [round(v, 3) for v in wilson_interval(0.5, 100)]
    [0.404, 0.596]
    """
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Utility:
    """Test figures of the model an arm is judged by (None where the run has none)."""

    accuracy: float | None
    balanced_accuracy: float | None
    auc: float | None
    majority_share: float | None
    source: str  # "global model", "server model", "mean of the clients' models"
    #: test images the figures were measured on (split.json), for the accuracy interval
    n_test: int | None = None

    @property
    def predicts_one_class(self) -> bool:
        return self.majority_share is not None and self.majority_share >= ONE_CLASS_SHARE

    @property
    def accuracy_ci(self) -> tuple[float, float] | None:
        """Wilson 95% interval over the test images (for a mean of client models: each model's own)."""
        if self.accuracy is None or not self.n_test:
            return None
        return wilson_interval(min(max(self.accuracy, 0.0), 1.0), self.n_test)


@dataclass
class Spotlight:
    """The one reconstruction the first screen shows for an arm: the best image of its strongest attack."""

    position: str
    method: str
    knowledge: str
    source: str
    gain_db: float | None
    gain_db_ci: tuple[float, float] | None
    leaks: bool
    #: which cell of the attack's PNG strips (samples and strips share one order)
    cell: int
    psnr: float | None
    #: the null attack's PSNR on the same true image (None when guesses were not paired)
    null_psnr: float | None
    null_psnr_mean: float | None
    images: dict[str, Any]


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
    #: every attack on the headline target as a table (rows: attacks; columns: knowledge levels)
    evidence: EvidenceTable | None = None
    #: targets the server does not receive from this arm, shown apart and never as the headline
    other_evidence: list[EvidenceTable] = field(default_factory=list)
    spotlight: Spotlight | None = None
    #: membership rows worth an ROC curve (the strongest row of each method)
    roc_rows: list[dict] = field(default_factory=list)
    training: str = ""
    dp: str = "no DP"

    @property
    def algorithm(self) -> str:
        return self.run.algorithm

    @property
    def is_dp(self) -> bool:
        return self.dp_level not in ("none", "")

    @property
    def target_epsilon(self) -> float | None:
        return as_float(as_dict(self.run.config.get("dp")).get("target_epsilon"))

    @property
    def bytes_per_round(self) -> float | None:
        if self.bytes_up_per_round is None and self.bytes_down_per_round is None:
            return as_float((self.run.summary or {}).get("bytes_per_round"))
        return (self.bytes_up_per_round or 0.0) + (self.bytes_down_per_round or 0.0)

    @property
    def inversion_files(self) -> list[AttackFile]:
        return self.run.inversion

    @property
    def membership_files(self) -> list[AttackFile]:
        return self.run.membership

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
class StudySetup:
    """What was compared, in words (from the first run; runs of one study share data and split)."""

    data: str
    split: str
    num_classes: int | None


@dataclass
class StudySummary:
    arms: list[ArmSummary]
    baselines: list[ArmSummary]
    #: (position, sentence), realistic first: the non-DP arms compared (all arms when every arm has DP)
    answer: list[tuple[str, str]]
    setup: StudySetup | None = None

    @property
    def everything(self) -> list[ArmSummary]:
        return self.arms + self.baselines

    @property
    def main_arms(self) -> list[ArmSummary]:
        """The arms the answer sentences compare: the non-DP ones (DP arms are the trade-off curve)."""
        plain = [a for a in self.arms if not a.is_dp]
        return plain or list(self.arms)

    @property
    def dp_arms(self) -> list[ArmSummary]:
        return [a for a in self.arms if a not in self.main_arms]


def utility_of(run: RunData) -> Utility:
    """The global model for full-model and centralized runs; the clients' own models otherwise.

    Partial aggregation and local training leave each hospital with its own model, so those
    arms are judged by the mean of the clients' test figures (the server model is shown in
    the details).
    """
    source = run.summary if run.summary is not None else (run.metrics[-1] if run.metrics else {})

    def figures(prefix: str) -> list[float | None]:
        return [as_float(source.get(f"{prefix}test_{name}")) for name in ("accuracy", "balanced_accuracy", "auc", "majority_share")]

    n_test = len(as_list(run.split.get("test"))) if run.split else None
    if run.algorithm in FULL_MODEL_ALGORITHMS + ("centralized",) and as_float(source.get("global_test_accuracy")) is not None:
        return Utility(*figures("global_"), "global model", n_test or None)
    mean = figures("mean_client_")
    if mean[0] is None:  # an unfinished run: average the last round's client rows
        rows = [c for c in as_list(source.get("clients")) if isinstance(c, dict)]
        for i, name in enumerate(("accuracy", "balanced_accuracy", "auc", "majority_share")):
            values = [as_float(c.get(f"test_{name}")) for c in rows]
            values = [v for v in values if v is not None]
            mean[i] = sum(values) / len(values) if values else None
    if mean[0] is not None:
        return Utility(*mean, "mean of the clients' models", n_test or None)
    server = figures("server_")
    return Utility(*server, "server model", n_test or None) if server[0] is not None else Utility(None, None, None, None, "")


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
    """The file of what the server receives: as the runner marked it, else by the arm's algorithm."""
    marked = [f for f in files if f.server_receives_target is True]
    if marked:
        return marked[0]
    return next((f for f in files if f.target == target and f.server_receives_target is not False), None)


def _result_of(block: dict, files: Sequence[AttackFile]) -> dict | None:
    """The inversion result a familywise block was picked from (its samples say which image is best)."""
    for attack in files:
        for row in attack.results:
            if all(row.get(name) == block.get(name) for name in ("method", "knowledge", "source", "round", "client")):
                return row
    return None


def spotlight_of(blocks: dict[str, dict], files: Sequence[AttackFile]) -> Spotlight | None:
    """The strongest attack a real server can mount (realistic or worst case; oracle only if nothing else ran),
    and within it the true image reconstructed best, so the first screen shows the arm's worst exposure."""
    candidates = [(p, blocks[p]) for p in SERVER_POSITIONS if as_float(blocks.get(p, {}).get("gain_db")) is not None]
    if not candidates and as_float(blocks.get("oracle", {}).get("gain_db")) is not None:
        candidates = [("oracle", blocks["oracle"])]
    if not candidates:
        return None
    position, block = max(candidates, key=lambda c: (c[1].get("leaks") is True, as_float(c[1]["gain_db"])))
    row = _result_of(block, files) or {}
    samples = [s for s in as_list(row.get("samples")) if isinstance(s, dict)]
    shown = samples[:8]  # the strips hold the first 8 samples, in order
    psnrs = [as_float(s.get("psnr")) for s in shown]
    cell = max(range(len(shown)), key=lambda i: psnrs[i] if psnrs[i] is not None else -math.inf) if shown else 0
    null_psnrs = as_list(row.get("null_psnrs"))
    paired = row.get("gain_paired") is True and cell < len(null_psnrs)
    return Spotlight(position, str(block.get("method", "?")), str(block.get("knowledge", "?")), str(block.get("source", "?")),
                     as_float(block.get("gain_db")), _interval(block.get("gain_db_ci")), block.get("leaks") is True, cell,
                     psnrs[cell] if shown else None, as_float(null_psnrs[cell]) if paired else None,
                     as_float(block.get("null_psnr_mean")), as_dict(block.get("images")))


def roc_rows_of(files: Sequence[AttackFile], limit: int = MAX_ROC_CURVES) -> list[dict]:
    """The strongest row (by AUC) of each membership method, strongest first, at most ``limit``."""
    best: dict[str, dict] = {}
    for attack in files:
        for row in attack.results:
            if row.get("same_as_knowledge") or not as_dict(row.get("roc")).get("fpr"):
                continue
            method = str(row.get("method"))
            if method not in best or (as_float(row.get("auc")) or 0) > (as_float(best[method].get("auc")) or 0):
                best[method] = row
    return sorted(best.values(), key=lambda r: -(as_float(r.get("auc")) or 0))[:limit]


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
    arm.findings = carry_up(arm.findings)
    headline = [f for f in (inversion, membership) if f is not None]
    if headline:
        arm.headline_target = headline[0].target
        arm.evidence = evidence_table(headline[0].target, headline)
    arm.other_targets = sorted({f.target for f in run.inversion + run.membership} - {f.target for f in headline})
    for other in arm.other_targets:
        arm.other_evidence.append(evidence_table(other, [f for f in run.inversion + run.membership if f.target == other]))
    arm.spotlight = spotlight_of(arm.inversion_positions, [inversion] if inversion else [])
    arm.roc_rows = roc_rows_of([membership] if membership else [])
    arm.training = setup_words.training_phrase(run)
    arm.dp = setup_words.dp_phrase(run)
    return arm


def summarize(runs: Sequence[RunData], labels: Sequence[str]) -> StudySummary:
    arms, baselines = [], []
    for run, label in zip(runs, labels):
        arm = arm_summary(run, label)
        (baselines if arm.baseline else arms).append(arm)
    study = StudySummary(arms, baselines, [])
    positions = {p: [arm.findings[p] for arm in study.main_arms] for p in POSITIONS}
    study.answer = study_answer(positions)
    if runs:
        names = setup_words.classes(runs[0])
        study.setup = StudySetup(setup_words.data_phrase(runs[0]), setup_words.split_phrase(runs[0]),
                                 len(names) or as_int(runs[0].config.get("num_classes")))
    return study


def as_int(value: Any) -> int | None:
    number = as_float(value)
    return int(number) if number is not None else None
