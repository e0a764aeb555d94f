"""Matplotlib figures rendered to PNG bytes in memory (Agg canvas, no pyplot state).

Using ``Figure`` + ``FigureCanvasAgg`` directly (not ``pyplot``) keeps report building free
of global backend state and display requirements, so it works on a headless server and
inside tests. Every label that came from a file goes through :func:`plain` so matplotlib
never interprets it as mathtext. Each figure draws its own reference line (chance, the
null attack) and intervals, and its axes start from chance, so noise never looks like
separation.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: ten colours that never repeat within one figure (matplotlib's tab10)
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
POSITION_MARKERS = {"realistic": "o", "worst-case": "^", "oracle": "s"}
#: oracle markers are drawn larger and hollow so a position with the same figures stays visible inside
POSITION_STYLE = {"realistic": {"markersize": 6}, "worst-case": {"markersize": 6},
                  "oracle": {"markersize": 10, "markerfacecolor": "none", "markeredgewidth": 1.4}}
POSITION_WORDS = {"realistic": "realistic", "worst-case": "worst case", "oracle": "oracle (upper bound)"}


def plain(label: object) -> str:
    """A label drawn literally: '$' would otherwise start mathtext (and can fail to parse)."""
    return str(label).replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


# --- the first screen's picture --------------------------------------------------------------

@dataclass
class SpotlightRow:
    """One arm's best reconstruction beside its original (None: withheld or missing) and the null guess."""

    label: str
    original: np.ndarray | None
    reconstruction: np.ndarray | None
    null: np.ndarray | None
    original_note: str = "withheld"
    reconstruction_caption: str = ""
    null_caption: str = ""


def _show(ax, pixels: np.ndarray | None, note: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if pixels is None:
        ax.set_facecolor("#eceff2")
        ax.text(0.5, 0.5, plain(note), ha="center", va="center", fontsize=8, color="#3a424b", wrap=True,
                transform=ax.transAxes)
        return
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")


def spotlight_figure(rows: Sequence[SpotlightRow]) -> bytes:
    """A rows x 3 grid: original (or withheld), best reconstruction, null guess, one row per arm."""
    fig = Figure(figsize=(4.3, 0.45 + 1.45 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for i, row in enumerate(rows):
        cells = ((row.original, row.original_note, ""),
                 (row.reconstruction, "reconstruction missing", row.reconstruction_caption),
                 (row.null, "null guess missing", row.null_caption))
        for j, (pixels, note, caption) in enumerate(cells):
            ax = axes[i][j]
            _show(ax, pixels, note)
            ax.set_xlabel(plain(caption), fontsize=7.5, labelpad=2)
            if i == 0:
                ax.set_title(("true image", "best reconstruction", "null guess")[j], fontsize=8.5)
        axes[i][0].set_ylabel(plain(row.label), fontsize=8.5, fontweight="bold")
    return _png(fig)


# --- membership: ROC --------------------------------------------------------------------------

@dataclass
class RocCurve:
    label: str
    fpr: list[float]
    tpr: list[float]


def roc_figure(curves: Sequence[RocCurve], floor: float = 1e-3) -> bytes:
    """ROC on log-log axes with the chance line; the legend sits outside the plot.

    Carlini et al., "Membership Inference Attacks From First Principles" (S&P 2022,
    arXiv:2112.03570): an attack is judged by its TPR at low FPR, which a linear ROC hides.
    ``floor`` is the smallest false-positive rate the non-members can resolve (1/n); lower
    rates are drawn at it.
    """
    fig = Figure(figsize=(6.4, 3.0), layout="constrained")
    ax = fig.subplots()
    ax.plot([floor, 1], [floor, 1], linestyle="--", color="black", linewidth=1, label="chance (random guess)")
    for colour, curve in zip(COLOURS, curves):
        points = sorted((max(f, floor), max(t, floor)) for f, t in zip(curve.fpr, curve.tpr))
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, linewidth=1.5, color=colour, label=plain(curve.label), drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("false positive rate (log)")
    ax.set_ylabel("true positive rate (log)")
    ax.grid(alpha=0.3, which="major")
    fig.legend(loc="outside right center", fontsize=7.5, frameon=False)
    return _png(fig)


# --- privacy against utility -----------------------------------------------------------------

@dataclass
class TradeoffPoint:
    """One arm at one attacker position: a leakage figure with its familywise interval, and accuracy."""

    label: str
    position: str
    accuracy: float
    accuracy_ci: tuple[float, float] | None
    value: float
    ci: tuple[float, float] | None


def _span(values: Sequence[float], low: float, minimum: float) -> tuple[float, float]:
    """Axis limits that include the reference value ``low`` and span at least ``minimum``."""
    lo, hi = min([low, *values]), max([low, *values])
    if hi - lo < minimum:
        hi = lo + minimum
    pad = 0.06 * (hi - lo)
    return lo - pad, hi + pad


def _tradeoff_panel(ax, points: Sequence[TradeoffPoint], colours: dict[str, str], reference: float, reference_label: str,
                    minimum_span: float, xlabel: str, chance_accuracy: float | None,
                    baselines: Sequence[tuple[str, float]]) -> None:
    ax.axvline(reference, color="black", linestyle="--", linewidth=1)
    ax.annotate(plain(reference_label), (reference, 0.0), xycoords=("data", "axes fraction"), xytext=(3, 4),
                textcoords="offset points", fontsize=7)
    values = []
    for p in points:
        xerr = None if p.ci is None else [[p.value - p.ci[0]], [p.ci[1] - p.value]]
        yerr = None if p.accuracy_ci is None else [[p.accuracy - p.accuracy_ci[0]], [p.accuracy_ci[1] - p.accuracy]]
        ax.errorbar([p.value], [p.accuracy], xerr=xerr, yerr=yerr, fmt=POSITION_MARKERS.get(p.position, "o"),
                    color=colours[p.label], capsize=3, linewidth=1.2, **POSITION_STYLE.get(p.position, {}))
        values += [p.value] + (list(p.ci) if p.ci else [])
    ax.set_xlim(*_span(values, reference, minimum_span))
    bottom = chance_accuracy if chance_accuracy is not None else 0.0
    for name, accuracy in baselines:
        ax.axhline(accuracy, color="grey", linestyle=":", linewidth=1)
        ax.annotate(plain(name), (1.0, accuracy), xycoords=("axes fraction", "data"), xytext=(-3, 2),
                    textcoords="offset points", fontsize=7, color="dimgrey", ha="right")
    ax.set_ylim(bottom, 1.0)
    if not points:
        ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (axis from chance)" if chance_accuracy is not None else "test accuracy")
    ax.grid(alpha=0.3)


def privacy_utility_figure(inversion: Sequence[TradeoffPoint], membership: Sequence[TradeoffPoint],
                           chance_accuracy: float | None, baselines: Sequence[tuple[str, float]] = ()) -> bytes:
    """Accuracy against leakage: reconstruction gain over the null (0 dB: no better than guessing
    from the server's own images) and membership AUC (0.5: chance), intervals on both axes."""
    labels = list(dict.fromkeys(p.label for p in [*inversion, *membership]))
    colours = {label: COLOURS[i % len(COLOURS)] for i, label in enumerate(labels)}
    fig = Figure(figsize=(10.5, 3.3), layout="constrained")
    ax_gain, ax_auc = fig.subplots(1, 2, sharey=True)
    _tradeoff_panel(ax_gain, inversion, colours, 0.0, "null attack", 4.0,
                    "reconstruction gain over the null attack (dB)  → leaks more", chance_accuracy, baselines)
    _tradeoff_panel(ax_auc, membership, colours, 0.5, "chance", 0.25,
                    "membership-inference AUC  → leaks more", chance_accuracy, baselines)
    ax_auc.set_ylabel("")
    handles = [ax_gain.plot([], [], color=colours[label], linewidth=6, label=plain(label))[0] for label in labels]
    positions = sorted({p.position for p in [*inversion, *membership]}, key=list(POSITION_MARKERS).index)
    handles += [ax_gain.plot([], [], POSITION_MARKERS[p], color="black", linestyle="none", label=POSITION_WORDS[p],
                             **POSITION_STYLE.get(p, {}))[0] for p in positions]
    if handles:
        fig.legend(handles=handles, loc="outside right center", fontsize=7.5, frameon=False)
    return _png(fig)


# --- DP: the trade-off as a curve over epsilon -----------------------------------------------

@dataclass
class DpPoint:
    epsilon: float | None  # None: the run without DP (drawn at the right edge)
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    auc: float | None
    auc_ci: tuple[float, float] | None
    gain: float | None
    gain_ci: tuple[float, float] | None


@dataclass
class DpCurve:
    label: str
    points: list[DpPoint] = field(default_factory=list)


def _distinct_ticks(values: Sequence[float], ratio: float = 1.3) -> list[float]:
    """Sorted values, leaving out any within ``ratio`` of the previous tick (labels would overlap on a log axis)."""
    ticks: list[float] = []
    for value in sorted(set(values)):
        if not ticks or value / ticks[-1] >= ratio:
            ticks.append(value)
    return ticks


def dp_curve_figure(curves: Sequence[DpCurve], chance_accuracy: float | None) -> bytes:
    """Accuracy, membership AUC and reconstruction gain against the epsilon spent, one line per
    scheme, with the run without DP drawn at the right ('no DP')."""
    finite = [p.epsilon for c in curves for p in c.points if p.epsilon is not None and p.epsilon > 0]
    lo, hi = (min(finite), max(finite)) if finite else (1.0, 10.0)
    no_dp_x = hi * 4  # where the run without DP sits on the log axis
    fig = Figure(figsize=(10.5, 3.0), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("accuracy", "accuracy_ci", "test accuracy", chance_accuracy, 1.0, "chance accuracy"),
              ("auc", "auc_ci", "membership AUC (realistic)", 0.5, None, "chance"),
              ("gain", "gain_ci", "reconstruction gain over null (dB, realistic)", 0.0, None, "null attack"))
    for ax, (name, ci_name, title, reference, top, reference_label) in zip(axes, panels):
        for colour, curve in zip(COLOURS, curves):
            pts = sorted((p for p in curve.points if getattr(p, name) is not None),
                         key=lambda p: p.epsilon if p.epsilon is not None else math.inf)
            if not pts:
                continue
            xs = [p.epsilon if p.epsilon is not None else no_dp_x for p in pts]
            ys = [getattr(p, name) for p in pts]
            cis = [getattr(p, ci_name) for p in pts]
            err = [[y - (c[0] if c else y) for y, c in zip(ys, cis)], [(c[1] if c else y) - y for y, c in zip(ys, cis)]]
            ax.errorbar(xs, ys, yerr=err, color=colour, marker="o", markersize=4, capsize=3, linewidth=1.4,
                        label=plain(curve.label))
        if reference is not None:
            ax.axhline(reference, color="black", linestyle="--", linewidth=1)
            ax.annotate(reference_label, (1.0, reference), xycoords=("axes fraction", "data"), xytext=(-3, 3),
                        textcoords="offset points", fontsize=7, ha="right")
        ax.set_xscale("log")
        ax.set_xlim(lo / 2, no_dp_x * 2)
        ticks = _distinct_ticks(finite) + [no_dp_x]
        ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks[:-1]] + ["no DP"])
        ax.minorticks_off()
        if name == "accuracy":
            ax.set_ylim(reference if reference is not None else 0.0, top)
        elif name == "auc":
            bottom, upper = ax.get_ylim()
            ax.set_ylim(min(bottom, 0.45), max(upper, 0.75))
        else:
            bottom, upper = ax.get_ylim()
            ax.set_ylim(min(bottom, -2.0), max(upper, 2.0))
        ax.set_xlabel("ε spent (log)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=7.5, frameon=False)
    return _png(fig)


# --- details: training per round -------------------------------------------------------------

@dataclass
class Series:
    """One line: ``label`` over ``x`` (points with a missing y are dropped)."""

    label: str
    x: list[float]
    y: list[float | None]
    emphasis: bool = False


def training_figure(accuracy: Sequence[Series], chance_accuracy: float | None) -> bytes:
    """Test accuracy per round: one thin line per client, bold for the model the arm is judged by."""
    fig = Figure(figsize=(6.4, 2.6), layout="constrained")
    ax = fig.subplots()
    for i, s in enumerate(accuracy):
        points = [(x, y) for x, y in zip(s.x, s.y) if y is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=2.4 if s.emphasis else 1.0,
                color="black" if s.emphasis else COLOURS[i % len(COLOURS)], label=plain(s.label))
    if chance_accuracy is not None:
        ax.axhline(chance_accuracy, color="grey", linestyle="--", linewidth=1)
    lowest = min([y for s in accuracy for y in s.y if y is not None], default=1.0)
    bottom = chance_accuracy if chance_accuracy is not None else 0.0
    ax.set_ylim(min(bottom, lowest - 0.02), 1.0)  # a client below chance stays in view
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside right center", fontsize=7.5, frameon=False)
    return _png(fig)
