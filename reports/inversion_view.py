"""The gradient-inversion evidence of one arm: its table cells and the reconstruction grids.

Grids are shown only for the strongest attack of each attacker position (the familywise
``positions`` blocks), each as three strips in one order: the true images (or a note when
``--redact-originals`` keeps them out: they are then never read), the reconstructions, and
the null attack's guesses from the server's own images. Every other row is a line of the
evidence table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reports import fmt
from reports.grid_cells import PAD
from reports.images import Embedded, embed_attack_png
from reports.load import as_dict, as_float
from reports.summary import ArmSummary
from reports.verdict import POSITION_NAMES, POSITIONS


def cell_lines(row: dict[str, Any]) -> list[str]:
    """'+1.2 dB [-0.3, +2.7] over the null' and 'ranked first 25% [1%, 81%] (null 0%)'."""
    lines = [f"{fmt.db_ci(row.get('gain_db'), row.get('gain_db_ci'))} over null"]
    ident = as_float(row.get("identification_top1"))
    if ident is not None:
        text = f"ranked first {fmt.pct_ci(ident, row.get('identification_top1_ci'))}"
        if as_float(row.get("null_identification_top1")) is not None:
            text += f" (null {fmt.pct(row.get('null_identification_top1'))})"
        lines.append(text)
    return lines


#: a full strip holds this many images; shorter strips are drawn narrower, at the same image size
STRIP_CELLS = 8


@dataclass
class GridView:
    position: str
    title: str
    caption: str
    originals: Embedded | None  # None: withheld (--redact-originals)
    reconstructions: Embedded | None  # None (with ``same_as``): the images of an earlier position
    null: Embedded | None
    #: the earlier position whose attack and images these are (identical knowledge levels)
    same_as: str | None = None

    @property
    def width_percent(self) -> int:
        """Share of the figure's width the strips take, so 4 images are as large as 4 of 8."""
        for image in (self.reconstructions, self.null, self.originals):
            if image is None:
                continue
            if image.width and image.height and image.height > 2 * PAD:
                size = image.height - 2 * PAD
                cells = max(1, round((image.width - PAD) / (size + PAD)))
                return round(100 * min(cells, STRIP_CELLS) / STRIP_CELLS)
        return 100


def _caption(block: dict[str, Any]) -> str:
    who = f"{block.get('method', '?')} (knowledge {block.get('knowledge', '?')}, {fmt.text(block.get('source'))})"
    verdict = "leaks measurably" if block.get("leaks") is True else "no measurable leak"
    ident = ""
    if as_float(block.get("identification_top1")) is not None:
        ident = (f"; true image ranked first {fmt.pct_ci(block.get('identification_top1'), block.get('identification_top1_ci'))}"
                 f" against the null's {fmt.pct(block.get('null_identification_top1'))}")
    rows = block.get("rows")
    family = f", familywise over {rows} attack rows" if isinstance(rows, int) else ""
    return (f"{who}: {fmt.db_ci(block.get('gain_db'), block.get('gain_db_ci'))} over the null attack "
            f"({fmt.num(block.get('psnr_mean'), 1)} dB against {fmt.num(block.get('null_psnr_mean'), 1)} dB PSNR){ident}"
            f"{family}: {verdict}.")


def _carried_note(arm: ArmSummary, position: str) -> str:
    """Where the verdict carried a weaker position's leak up to this one (reports.verdict.carry_up)."""
    findings = arm.findings.get(position)
    found = findings.get("inversion") if findings is not None else None
    if found is None or found.found_at is None:
        return ""
    return (f" The weaker {POSITION_NAMES[found.found_at]} position already leaks measurably by "
            f"{found.method}, so this stronger position does too (the answer says so).")


def grids(arm: ArmSummary, redact_originals: bool) -> list[GridView]:
    """One grid per position; a position whose strongest attack drew the very images of an earlier
    one (FedAvg's oracle holds the model the server holds) gets a line saying so, not a copy."""
    out = []
    shown: dict[object, str] = {}
    for position in POSITIONS:
        block = arm.inversion_positions.get(position)
        if not block:
            continue
        images = as_dict(block.get("images"))
        title = POSITION_NAMES[position].capitalize()
        key = images.get("reconstructions")
        if isinstance(key, str) and key in shown:
            out.append(GridView(position, title, _caption(block) + _carried_note(arm, position), None, None, None,
                                same_as=shown[key]))
            continue
        if isinstance(key, str):
            shown[key] = POSITION_NAMES[position]
        originals = None if redact_originals else embed_attack_png(arm.run.path, images.get("originals"))
        out.append(GridView(position, title, _caption(block) + _carried_note(arm, position), originals,
                            embed_attack_png(arm.run.path, images.get("reconstructions")),
                            embed_attack_png(arm.run.path, images.get("null"))))
    return out
