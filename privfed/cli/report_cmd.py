"""``privfed report RUN [RUN ...] --out FILE.html``: one self-contained HTML privacy report."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    runs: list[Path] = typer.Argument(..., help="Run directories written by 'privfed train' (several: compared side by side; the first is the reference)."),
    out: Path = typer.Option(..., "--out", "-o", help="HTML file to write (self-contained: images inlined, opens offline)."),
    redact_originals: bool = typer.Option(False, "--redact-originals", help="Never embed the true (patient) images; show reconstruction metrics only. Use for reports you share."),
    title: str = typer.Option(None, "--title", help="Report title (default: the runs' labels)."),
) -> None:
    """Write an HTML privacy report: set-up, utility, communication, attack results, comparison."""
    from reports import build_report

    path = build_report(list(runs), out, redact_originals=redact_originals, title=title)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
