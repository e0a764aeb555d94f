"""HTML privacy reports built only from run directories' JSON and PNG files.

``reports`` never imports torch, the models, ``privfed.federated`` or ``attacks``: a report
can be made anywhere the run directories are, and it shows exactly what the files say.
"""

from __future__ import annotations

from reports.build import build_report, render_report
from reports.compare import ComparisonRow, comparison_row, verdict, verdicts
from reports.load import RunData, load_run

__all__ = ["ComparisonRow", "RunData", "build_report", "comparison_row", "load_run", "render_report", "verdict", "verdicts"]
