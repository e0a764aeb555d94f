"""HTML privacy reports built only from run directories' JSON and PNG files.

``reports`` never imports torch, the models, ``privfed.federated`` or ``attacks``: a report
can be made anywhere the run directories are, and it shows exactly what the files say.
One computed :class:`StudySummary` feeds every view, so the answer and the evidence agree.
"""

from __future__ import annotations

from reports.build import build_report, render_report, render_summary
from reports.labels import arm_labels
from reports.load import RunData, load_run
from reports.summary import StudySummary, summarize

__all__ = ["RunData", "StudySummary", "arm_labels", "build_report", "load_run", "render_report", "render_summary", "summarize"]
