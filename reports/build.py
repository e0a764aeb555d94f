"""Build one self-contained HTML privacy report from one or more run directories.

The report reads the answer first, the evidence next and the details last, and every part
renders the one :class:`reports.summary.StudySummary`, so no two parts can disagree. Each
view has its own small builder (``answer_view``, ``utility_view``, ``evidence_view`` with
``inversion_view`` and ``membership_view``, ``details_view``) and its own template part.

The file opens offline: CSS is inline, every image is a ``data:`` URI built from PNG bytes
we encoded ourselves, there is no JavaScript, and a Content-Security-Policy forbids any
network access, so it can be mailed or archived without leaking by fetching anything.
Everything read from run files is escaped by jinja2 autoescape (no ``|safe`` on file
content); with ``redact_originals`` the true images are never read, so the report does not
itself leak patient images. The same runs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jinja2

from privfed import __version__
from privfed.errors import PrivfedError
from privfed.io import atomic_write_text
from reports import answer_view, details_view, evidence_view, utility_view
from reports.fmt import FILTERS
from reports.labels import arm_labels
from reports.load import RunData, load_run
from reports.summary import StudySummary, summarize

TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def render_summary(summary: StudySummary, redact_originals: bool = False, title: str | None = None,
                   link_base: Path | None = None) -> str:
    """The report's HTML text for a computed summary (``link_base``: the folder the report is written to)."""
    chance = utility_view.chance_accuracy(summary)
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title or ("privfed privacy report: " + ", ".join(a.label for a in summary.everything)),
        version=__version__,
        redacted=redact_originals,
        summary=summary,
        answer=answer_view.build(summary, redact_originals),
        utility=utility_view.build(summary),
        evidence=[evidence_view.arm_evidence(a, redact_originals) for a in summary.arms],
        details=details_view.build(summary, link_base, chance),
    )


def render_report(runs: Sequence[RunData], redact_originals: bool = False, title: str | None = None,
                  link_base: Path | None = None) -> str:
    """The report's HTML text for already-loaded runs."""
    if not runs:
        raise PrivfedError("privfed report: no run directories given; pass at least one RUN")
    return render_summary(summarize(runs, arm_labels(runs)), redact_originals, title, link_base)


def build_report(run_dirs: list[Path], out: Path, redact_originals: bool = False, title: str | None = None) -> Path:
    """Read ``run_dirs`` (JSON and PNG only) and write one self-contained HTML report to ``out``."""
    out = Path(out)
    if out.is_dir():
        raise PrivfedError(f"--out {out}: is a folder; pass a file name such as {out / 'report.html'}")
    runs = [load_run(Path(p)) for p in run_dirs]
    html = render_report(runs, redact_originals=redact_originals, title=title, link_base=out.parent)
    atomic_write_text(out, html)
    return out
