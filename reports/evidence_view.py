"""One arm's evidence, ready to print: its table (rows are attacks, columns the knowledge levels
that differ), its reconstruction grids and its ROC curves.

The table itself is computed in :mod:`reports.evidence` (held by the summary); this builder
only turns each cell into text lines, inversion cells through :mod:`reports.inversion_view`
and membership cells through :mod:`reports.membership_view`, and marks the familywise
headline rows the answer quotes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reports import inversion_view, membership_view
from reports.evidence import Cell, EvidenceTable
from reports.summary import ArmSummary
from reports.verdict import POSITION_NAMES

KIND_WORDS = {"inversion": "Gradient inversion (can the server rebuild a patient's image?)",
              "membership": "Membership inference (can the server tell who was in the training set?)"}


@dataclass
class CellView:
    lines: list[str]
    span: int = 1
    absent: bool = False
    note: str = ""
    marks: list[str] = field(default_factory=list)


@dataclass
class RowView:
    method: str
    setting: str
    cells: list[CellView]


@dataclass
class GroupView:
    title: str
    rows: list[RowView]


@dataclass
class TableView:
    target: str
    columns: list[tuple[str, str]]  # (title, meaning)
    groups: list[GroupView]
    scope: str
    merged_note: str
    skipped: list[str]


def _cell(kind: str, cell: Cell) -> CellView:
    if cell.absent:
        return CellView(["—"], cell.span, absent=True, note="not attacked at this knowledge level")
    lines = (inversion_view if kind == "inversion" else membership_view).cell_lines(cell.row)
    note = ""
    if cell.span > 1:
        note = " = ".join(cell.knowledges) + ": identical models, attacked once"
    if cell.same_as:
        note = f"same models as knowledge {cell.same_as}: the figures repeat that cell"
    marks = [f"★ {POSITION_NAMES.get(p, p)}" for p in cell.headline_of]
    return CellView(lines, cell.span, note=note, marks=marks)


def table_view(table: EvidenceTable) -> TableView:
    groups = []
    for kind in ("inversion", "membership"):
        rows = [RowView(r.method, r.setting, [_cell(kind, c) for c in r.cells]) for r in table.rows if r.kind == kind]
        if rows:
            groups.append(GroupView(KIND_WORDS[kind], rows))
    aliased = [c for c in table.columns if c.aliases]
    merged_note = ""
    if aliased:
        merged_note = "; ".join(f"knowledge levels {c.title} give the attacker identical models here, so they were "
                                "attacked once and are shown as one column" for c in aliased)
    skipped = [f"{s.get('method', '?')} (knowledge {s.get('knowledge', '?')}, {s.get('model', '?')}): {s.get('reason', '?')}"
               for s in table.skipped]
    return TableView(table.target, [(c.title, c.meaning) for c in table.columns], groups, table.scope, merged_note, skipped)


@dataclass
class ArmEvidence:
    """Everything the evidence section shows for one attacked arm."""

    label: str
    target: str | None
    table: TableView | None
    grids: list[inversion_view.GridView]
    roc_uri: str | None
    not_run: list[str]


def _not_run(arm: ArmSummary) -> list[str]:
    missing = []
    if not arm.run.inversion:
        missing.append(f"gradient inversion (run 'privfed attack {arm.folder} --kind inversion')")
    if not arm.run.membership:
        missing.append(f"membership inference (run 'privfed attack {arm.folder} --kind membership')")
    return missing


def arm_evidence(arm: ArmSummary, redact_originals: bool) -> ArmEvidence:
    return ArmEvidence(arm.label, arm.headline_target,
                       table_view(arm.evidence) if arm.evidence is not None else None,
                       inversion_view.grids(arm, redact_originals), membership_view.roc_uri(arm), _not_run(arm))
