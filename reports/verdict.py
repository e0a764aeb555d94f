"""The study's answer in words: does an arm leak measurably, and does one leak more than another?

One small set of rules, applied to the familywise figures the attack runners wrote (the
``positions`` block of each attack file: the strongest attack of each attacker position,
its intervals widened for the number of attacks it was picked from):

* an arm **leaks measurably** at a position when an inversion's gain over the null attack
  has an interval above 0 dB, or its identification rate an interval above the null's, or
  a membership attack's AUC an interval above 0.5;
* arm A **leaks more** than arm B only where one of those intervals of A lies wholly above
  the same interval of B, *and shows leakage itself* (above 0 dB, above the null's
  identification, above AUC 0.5), and none lies wholly below; an attack doing "less badly"
  than another while both stay at or under their null is not a leak, so both arms at their
  null are "neither leaks measurably by these attacks at this budget"; overlapping intervals
  are "no measurable difference". Every figure quoted names its attack and knowledge level.

The three positions are never mixed: realistic (knowledge none or init, the updates the
server really receives), worst case (a replayed one-image gradient), oracle (the client's
real weights: an upper bound no server reaches). They are ordered, though: a stronger
position can run whatever a weaker one ran, so a leak found at a weaker position is carried
up (named as found there) where the stronger position's own strongest attack, whose
interval is widened for more attacks, shows none (`carry_up`). Otherwise the "upper
bound" could read "no measurable leak" beside a worst case that leaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from reports.fmt import db_interval, pct, pct_interval, signed

POSITIONS = ("realistic", "worst-case", "oracle")
POSITION_NAMES = {"realistic": "realistic", "worst-case": "worst case", "oracle": "oracle (upper bound)"}


@dataclass(frozen=True)
class Finding:
    """The strongest attack of one kind at one position against one arm, with familywise intervals.

    ``kind`` "inversion": ``value`` is the gain over the null in dB (interval ``ci``), with
    identification ``ident``/``ident_ci`` against the null's ``null_ident_ci``. ``kind``
    "membership": ``value`` is the AUC with interval ``ci``.
    """

    kind: str
    method: str
    knowledge: str
    value: float
    ci: tuple[float, float] | None
    ident: float | None = None
    ident_ci: tuple[float, float] | None = None
    null_ident: float | None = None
    null_ident_ci: tuple[float, float] | None = None
    leaks: bool = False
    #: the weaker position this finding was carried up from (None: found at its own position)
    found_at: str | None = None

    def describe(self) -> str:
        """'analytic (knowledge none): +7.1 dB over the null [+5.2, +9.0], identified 9/10 ...'."""
        where = f", found at the {POSITION_NAMES.get(self.found_at, self.found_at)} position" if self.found_at else ""
        who = f"{self.method} (knowledge {self.knowledge}{where})"
        if self.kind == "inversion":
            text = f"{who}: {signed(self.value)} dB over the null attack {_db_interval(self.ci)}"
            if self.ident is not None:
                text += f", true image ranked first {pct(self.ident)} {_pct_interval(self.ident_ci)}".rstrip()
                if self.null_ident is not None:
                    text += f" (null {pct(self.null_ident)})"
            return text
        return f"{who}: membership AUC {self.value:.2f} {_interval(self.ci)}"


@dataclass
class ArmFindings:
    """Everything the verdict needs of one arm at one position."""

    label: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return bool(self.findings)

    @property
    def leaks(self) -> bool:
        return any(f.leaks for f in self.findings)

    def get(self, kind: str) -> Finding | None:
        return next((f for f in self.findings if f.kind == kind), None)


def _interval(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "(no interval: too few images)"


def _db_interval(ci) -> str:
    return db_interval(ci) if ci else "(no interval: too few images)"


def _pct_interval(ci) -> str:
    return pct_interval(ci)


def arm_status(arm: ArmFindings) -> str:
    """One clause on one arm at one position.

    >>> arm_status(ArmFindings("partial"))
    'partial: not measured'
    >>> arm_status(ArmFindings("fedavg", [Finding("inversion", "analytic", "none", 7.1, (5.2, 9.0), leaks=True)]))
    'fedavg leaks measurably: analytic (knowledge none): +7.1 dB over the null attack [+5.2, +9.0]'
    >>> arm_status(ArmFindings("partial", [Finding("membership", "loss", "none", 0.51, (0.45, 0.57))]))
    'partial: no measurable leak (loss (knowledge none): membership AUC 0.51 [0.45, 0.57])'
    """
    if not arm.measured:
        return f"{arm.label}: not measured"
    if arm.leaks:
        return f"{arm.label} leaks measurably: " + "; ".join(f.describe() for f in arm.findings if f.leaks)
    return f"{arm.label}: no measurable leak (" + "; ".join(f.describe() for f in arm.findings) + ")"


def _above(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    return a is not None and b is not None and a[0] > b[1]


#: where an interval must lie wholly above for the figure to show leakage (AUC: chance; gain: the null)
_NULL_LEVEL = {"inversion": 0.0, "membership": 0.5}


def _leaks_by(finding: Finding, measure: str) -> bool:
    """The finding's own interval shows leakage on this measure (not merely 'less under the null')."""
    if measure == "identification":
        return _above(finding.ident_ci, finding.null_ident_ci)
    return finding.ci is not None and finding.ci[0] > _NULL_LEVEL[finding.kind]


def _direction(a: ArmFindings, b: ArmFindings) -> tuple[list[str], list[str]]:
    """What separates the arms: (ways a leaks more, ways b leaks more), each naming both figures.

    A measure counts only when the higher arm's interval lies wholly above the other's and also
    shows leakage itself: two attacks both at or under their null separate nothing a reader cares about.
    """
    more, less = [], []
    for kind in ("inversion", "membership"):
        fa, fb = a.get(kind), b.get(kind)
        if fa is None or fb is None:
            continue
        what = "reconstruction gain" if kind == "inversion" else "membership AUC"
        if _above(fa.ci, fb.ci) and _leaks_by(fa, kind):
            more.append(f"{what}: {fa.describe()} against {fb.describe()}")
        elif _above(fb.ci, fa.ci) and _leaks_by(fb, kind):
            less.append(f"{what}: {fb.describe()} against {fa.describe()}")
        if kind == "inversion":
            if _above(fa.ident_ci, fb.ident_ci) and _leaks_by(fa, "identification"):
                more.append(f"identification: {pct(fa.ident)} {_pct_interval(fa.ident_ci)} against "
                            f"{pct(fb.ident)} {_pct_interval(fb.ident_ci)}")
            elif _above(fb.ident_ci, fa.ident_ci) and _leaks_by(fb, "identification"):
                less.append(f"identification: {pct(fb.ident)} {_pct_interval(fb.ident_ci)} against "
                            f"{pct(fa.ident)} {_pct_interval(fa.ident_ci)}")
    return more, less


def compare_arms(position: str, a: ArmFindings, b: ArmFindings) -> str:
    """One sentence for one attacker position: the only place a direction is ever declared.

    >>> inv = lambda gain, ci, leaks: Finding("inversion", "analytic", "none", gain, ci, leaks=leaks)
    >>> compare_arms("worst-case", ArmFindings("fedavg", [inv(7.1, (5.2, 9.0), True)]),
    ...              ArmFindings("partial", [inv(0.4, (-0.5, 1.2), False)]))
    'Worst case: fedavg leaks more than partial (reconstruction gain: analytic (knowledge none): +7.1 dB over the null attack [+5.2, +9.0] against analytic (knowledge none): +0.4 dB over the null attack [-0.5, +1.2]).'
    >>> compare_arms("realistic", ArmFindings("fedavg", [inv(0.3, (-0.4, 1.0), False)]),
    ...              ArmFindings("partial", [inv(-0.2, (-1.1, 0.6), False)]))
    'Realistic: neither fedavg nor partial leaks measurably by these attacks at this budget (fedavg: analytic (knowledge none): +0.3 dB over the null attack [-0.4, +1.0]; partial: analytic (knowledge none): -0.2 dB over the null attack [-1.1, +0.6]).'
    >>> compare_arms("realistic", ArmFindings("fedavg", [inv(3.1, (0.5, 5.0), True)]),
    ...              ArmFindings("partial", [inv(1.9, (0.2, 3.5), True)]))
    'Realistic: no measurable difference between fedavg and partial; fedavg leaks measurably: analytic (knowledge none): +3.1 dB over the null attack [+0.5, +5.0]; partial leaks measurably: analytic (knowledge none): +1.9 dB over the null attack [+0.2, +3.5].'
    >>> compare_arms("worst-case", ArmFindings("fedavg", [inv(-0.6, (-0.8, -0.3), False)]),
    ...              ArmFindings("partial", [inv(-0.2, (-0.25, 0.1), False)]))[:74]
    'Worst case: neither fedavg nor partial leaks measurably by these attacks a'
    >>> compare_arms("oracle", ArmFindings("fedavg"), ArmFindings("partial"))
    'Oracle (upper bound): not measured for fedavg or partial.'
    >>> mem = lambda auc, ci: Finding("membership", "lira-offline", "none", auc, ci, leaks=ci[0] > 0.5)
    >>> compare_arms("realistic", ArmFindings("fedavg", [inv(6.0, (4.0, 8.0), True), mem(0.50, (0.45, 0.55))]),
    ...              ArmFindings("partial", [inv(0.0, (-1.0, 1.0), False), mem(0.70, (0.62, 0.78))]))[:71]
    'Realistic: fedavg and partial each leak more by one measure: fedavg by '
    """
    name = POSITION_NAMES.get(position, position)
    name = name[0].upper() + name[1:]
    if not a.measured and not b.measured:
        return f"{name}: not measured for {a.label} or {b.label}."
    if not a.measured or not b.measured:
        return f"{name}: {arm_status(a)}; {arm_status(b)}."
    more, less = _direction(a, b)
    if more and not less:
        return f"{name}: {a.label} leaks more than {b.label} ({'; '.join(more)})."
    if less and not more:
        return f"{name}: {b.label} leaks more than {a.label} ({'; '.join(less)})."
    if more and less:
        return (f"{name}: {a.label} and {b.label} each leak more by one measure: {a.label} by {'; '.join(more)}; "
                f"{b.label} by {'; '.join(less)}.")
    if not a.leaks and not b.leaks:
        details = "; ".join(f"{arm.label}: " + "; ".join(f.describe() for f in arm.findings) for arm in (a, b))
        return f"{name}: neither {a.label} nor {b.label} leaks measurably by these attacks at this budget ({details})."
    return f"{name}: no measurable difference between {a.label} and {b.label}; {arm_status(a)}; {arm_status(b)}."


#: what each position inherits from the weaker ones: a one-image replay carries at least
#: what an observed update shows of an image; membership has no worst-case replay
_CARRIED = {"worst-case": (("realistic", "inversion"),),
            "oracle": (("worst-case", "inversion"), ("realistic", "inversion"), ("realistic", "membership"))}


def carry_up(by_position: dict[str, ArmFindings]) -> dict[str, ArmFindings]:
    """One arm's findings with leaks of weaker positions carried up where the stronger shows none.

    >>> inv = lambda gain, ci, leaks: Finding("inversion", "layerwise", "none", gain, ci, leaks=leaks)
    >>> out = carry_up({"realistic": ArmFindings("fedavg", [inv(-4.0, (-5.0, -3.0), False)]),
    ...                 "worst-case": ArmFindings("fedavg", [inv(1.7, (0.1, 3.4), True)]),
    ...                 "oracle": ArmFindings("fedavg", [inv(1.7, (-0.2, 3.6), False)])})
    >>> arm_status(out["oracle"])
    'fedavg leaks measurably: layerwise (knowledge none, found at the worst case position): +1.7 dB over the null attack [+0.1, +3.4]'
    >>> arm_status(out["worst-case"])[:50]
    'fedavg leaks measurably: layerwise (knowledge none'
    >>> carry_up({"realistic": ArmFindings("partial", [inv(-1.0, (-2.0, 0.5), False)]),
    ...           "oracle": ArmFindings("partial", [inv(0.2, (-0.3, 0.7), False)])})["oracle"].findings[0].value
    0.2
    """
    out = dict(by_position)
    for position in POSITIONS:
        if position not in out:
            continue
        arm = out[position]
        findings = list(arm.findings)
        for weaker, kind in _CARRIED.get(position, ()):
            below = out.get(weaker)
            carried = below.get(kind) if below is not None else None
            own = next((f for f in findings if f.kind == kind), None)
            if carried is None or not carried.leaks or (own is not None and own.leaks):
                continue
            carried = replace(carried, found_at=carried.found_at or weaker)
            findings = [carried if f is own else f for f in findings] if own is not None else findings + [carried]
        out[position] = ArmFindings(arm.label, findings)
    return out


def study_answer(positions: dict[str, Sequence[ArmFindings]]) -> list[tuple[str, str]]:
    """(position, sentence) for each position, first arm against each other arm, realistic first."""
    out = []
    for position in POSITIONS:
        arms = list(positions.get(position, []))
        if len(arms) == 1:
            out.append((position, f"{POSITION_NAMES[position].capitalize()}: {arm_status(arms[0])}."))
        for other in arms[1:]:
            out.append((position, compare_arms(position, arms[0], other)))
    return out
