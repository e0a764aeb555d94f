"""The first screen: what was compared, the answer per attacker position, and one picture.

The sentences are the summary's (:func:`reports.verdict.study_answer` over the familywise
``positions`` blocks), printed as they are so the answer and the evidence below cannot
disagree. The picture shows, per arm, the true image its strongest server-side attack
reconstructed best, that reconstruction, and the null attack's guess for it; with
``--redact-originals`` the true image is never read and a grey "withheld" box stands in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reports import figures, fmt
from reports.grid_cells import decode_png, strip_cell
from reports.images import png_data_uri, read_attack_png
from reports.labels import ALGORITHM_SHORT
from reports.setup_words import shared_training_phrase, training_parts
from reports.summary import ArmSummary, StudySummary
from reports.verdict import POSITION_NAMES, POSITIONS, arm_status


@dataclass
class Sentence:
    position: str
    text: str
    leaks: bool  # some arm leaks measurably at this position


@dataclass
class AnswerView:
    compared: list[tuple[str, str]]
    sentences: list[Sentence]
    #: DP arms, per position a clause (they are the trade-off curve, not the main comparison)
    dp_rows: list[tuple[str, list[str]]] = field(default_factory=list)
    picture_uri: str | None = None
    picture_notes: list[str] = field(default_factory=list)


def _once_or_each(arms: list[ArmSummary], phrase, always_name: bool = False) -> str:
    """A phrase shared by every arm once; otherwise each distinct phrase once, after the arms that share it."""
    groups: dict[str, list[str]] = {}
    for arm in arms:
        groups.setdefault(phrase(arm), []).append(arm.label)
    if len(groups) == 1 and not always_name:
        return next(iter(groups))
    return "; ".join(f"{', '.join(labels)}: {text}" for text, labels in groups.items())


def compared(summary: StudySummary) -> list[tuple[str, str]]:
    rows = []
    if summary.setup is not None:
        rows += [("Data", summary.setup.data), ("Split", summary.setup.split)]
    if summary.everything:
        rows.append(("Schemes", _once_or_each(summary.everything, lambda a: ALGORITHM_SHORT.get(a.algorithm, a.algorithm)
                                              + (" (baseline)" if a.baseline else ""), always_name=True)))
        trained = summary.arms or summary.baselines
        rows.append(("Training", shared_training_phrase([(a.label, training_parts(a.run)) for a in trained])
                     + ("; baselines: see the details" if summary.arms and summary.baselines else "")))
        rows.append(("Differential privacy", _once_or_each(summary.everything, lambda a: a.dp)))
    return rows


def _sentences(summary: StudySummary) -> list[Sentence]:
    out = []
    for position, text in summary.answer:
        leaks = any(a.findings.get(position) is not None and a.findings[position].leaks for a in summary.main_arms)
        out.append(Sentence(position, text, leaks))
    return out


def _dp_rows(summary: StudySummary) -> list[tuple[str, list[str]]]:
    rows = []
    for arm in summary.dp_arms:
        clauses = []
        for position in POSITIONS:
            clause = arm_status(arm.findings[position])
            clauses.append(clause[len(arm.label):].lstrip(": ") if clause.startswith(arm.label) else clause)
        rows.append((arm.label, clauses))
    return rows


def _cell(arm: ArmSummary, name: str) -> tuple[object, str]:
    """(pixels or None, why not) of the spotlight's cell in one strip."""
    found = read_attack_png(arm.run.path, arm.spotlight.images.get(name))
    if found.data is None:
        return None, found.problem or "missing"
    pixels = decode_png(found.data)
    if pixels is None:
        return None, "image does not decode"
    cell = strip_cell(pixels, arm.spotlight.cell)
    return (cell, "") if cell is not None else (None, "unexpected strip layout")


def picture(summary: StudySummary, redact_originals: bool) -> tuple[str | None, list[str]]:
    rows, notes = [], []
    for arm in summary.arms:
        spot = arm.spotlight
        if spot is None:
            continue
        if redact_originals:
            original, original_note = None, "withheld\n(--redact-originals)"
        else:
            original, problem = _cell(arm, "originals")
            original_note = f"not shown:\n{problem}"
        reconstruction, _ = _cell(arm, "reconstructions")
        null, _ = _cell(arm, "null")
        null_caption = f"{spot.null_psnr:.1f} dB" if spot.null_psnr is not None else \
            f"mean {spot.null_psnr_mean:.1f} dB" if spot.null_psnr_mean is not None else ""
        rows.append(figures.SpotlightRow(arm.label, original, reconstruction, null, original_note,
                                         f"{spot.psnr:.1f} dB PSNR" if spot.psnr is not None else "", null_caption))
        null_words = (f"the null guess for the same image reaches {spot.null_psnr:.1f} dB" if spot.null_psnr is not None
                      else f"the null guesses reach {fmt.num(spot.null_psnr_mean, 1)} dB on average")
        notes.append(f"{arm.label}: {POSITION_NAMES[spot.position]}, {spot.method} (knowledge {spot.knowledge}); "
                     f"this image {fmt.num(spot.psnr, 1)} dB PSNR, {null_words}; over all its images "
                     f"{fmt.db_ci(spot.gain_db, spot.gain_db_ci)} over the null attack "
                     f"({'leaks measurably' if spot.leaks else 'no measurable leak'}).")
    if not rows:
        return None, []
    return png_data_uri(figures.spotlight_figure(rows)), notes


def build(summary: StudySummary, redact_originals: bool) -> AnswerView:
    uri, notes = picture(summary, redact_originals)
    return AnswerView(compared(summary), _sentences(summary), _dp_rows(summary), uri, notes)
