"""Matplotlib figures rendered to PNG bytes in memory (Agg canvas, no pyplot state).

Using ``Figure`` + ``FigureCanvasAgg`` directly (not ``pyplot``) keeps report building free
of global backend state and display requirements, so it works on a headless server and
inside tests. Every label that came from a file goes through :func:`plain` so matplotlib
never interprets it as mathtext.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plain(label: object) -> str:
    """A label drawn literally: '$' would otherwise start mathtext (and can fail to parse)."""
    return str(label).replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


@dataclass
class Series:
    """One line: ``label`` over ``x`` (points with a missing y are dropped)."""

    label: str
    x: list[float]
    y: list[float | None]
    emphasis: bool = False


def _plot_series(ax, series: Sequence[Series]) -> bool:
    drawn = False
    for s in series:
        points = [(x, y) for x, y in zip(s.x, s.y) if y is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=2.4 if s.emphasis else 1.2,
                color="black" if s.emphasis else None, label=plain(s.label))
        drawn = True
    return drawn


def utility_figure(accuracy: Sequence[Series], auc: Sequence[Series], baselines: Sequence[tuple[str, float]]) -> bytes:
    """Test accuracy and AUC per round (one line per client, bold for global/server).

    ``baselines`` are (label, accuracy) pairs of local-only / centralised runs, drawn as
    dashed horizontal lines on the accuracy panel.
    """
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_acc, ax_auc = fig.subplots(1, 2)
    _plot_series(ax_acc, accuracy)
    for label, value in baselines:
        ax_acc.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax_acc.annotate(plain(label), (0, value), xycoords=("axes fraction", "data"), xytext=(3, 2),
                        textcoords="offset points", fontsize=7, color="dimgrey")
    _plot_series(ax_auc, auc)
    for ax, title in ((ax_acc, "test accuracy"), (ax_auc, "test AUC")):
        ax.set_xlabel("round")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = ax_acc.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=8)
    return _png(fig)


def communication_figure(rounds: Sequence[float], up: Sequence[float | None], down: Sequence[float | None]) -> bytes:
    """Bytes sent up (clients to server) and down per round, in MiB."""
    fig = Figure(figsize=(6, 2.8), layout="constrained")
    ax = fig.subplots()
    width = 0.4
    mib = 1024 * 1024
    ax.bar([r - width / 2 for r in rounds], [(u or 0) / mib for u in up], width, label="up (to server)")
    ax.bar([r + width / 2 for r in rounds], [(d or 0) / mib for d in down], width, label="down (to clients)")
    ax.set_xlabel("round")
    ax.set_ylabel("MiB")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, axis="y")
    tallest = max([(v or 0) / mib for v in list(up) + list(down)] + [0.0])
    ax.set_ylim(0, tallest * 1.3 if tallest > 0 else 1)  # headroom so the legend never hides a bar
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    return _png(fig)


@dataclass
class RocCurve:
    label: str
    fpr: list[float]
    tpr: list[float]


def roc_figure(curves: Sequence[RocCurve], floor: float = 1e-4) -> bytes:
    """ROC on log-log axes, so the low-FPR region that matters for privacy is visible.

    Carlini et al., "Membership Inference Attacks From First Principles" (S&P 2022,
    arXiv:2112.03570): an attack is judged by its TPR at low FPR, which a linear ROC hides.
    Rates below ``floor`` are drawn at ``floor``.
    """
    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot([floor, 1], [floor, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for curve in curves:
        points = sorted((max(f, floor), max(t, floor)) for f, t in zip(curve.fpr, curve.tpr))
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, linewidth=1.4, label=plain(curve.label))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


@dataclass
class TradeoffPoint:
    label: str
    accuracy: float | None
    best_psnr: float | None
    mia_auc: float | None


def privacy_utility_figure(points: Sequence[TradeoffPoint]) -> bytes:
    """Accuracy against the two leakage measures, one labelled point per run."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_psnr, ax_auc = fig.subplots(1, 2)
    for ax, attr, xlabel in ((ax_psnr, "best_psnr", "best reconstruction PSNR (dB)  → leaks more"),
                             (ax_auc, "mia_auc", "membership-inference AUC  → leaks more")):
        shown = 0
        for point in points:
            x = getattr(point, attr)
            if x is None or point.accuracy is None:
                continue
            ax.scatter([x], [point.accuracy], s=30)
            ax.annotate(plain(point.label), (x, point.accuracy), xytext=(4, 4), textcoords="offset points", fontsize=8)
            shown += 1
        if not shown:
            ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.margins(0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    return _png(fig)
