"""Build one self-contained HTML privacy report from one or more run directories.

The report is a single file that opens offline: CSS is inline, every image is a ``data:``
URI built from PNG bytes we encoded ourselves, there is no JavaScript, and a
Content-Security-Policy forbids any network access, so the file can be mailed or archived
without leaking by fetching anything. Everything read from run files is escaped by jinja2
autoescape (no ``|safe`` on file content); with ``redact_originals`` the true images are
never read, so the report does not itself leak patient images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from privfed import __version__
from privfed.errors import PrivfedError
from privfed.io import atomic_write_text
from reports import figures
from reports.compare import ComparisonRow, comparison_row, final_accuracy, run_labels, verdicts
from reports.fmt import FILTERS
from reports.images import Embedded, embed_png, png_data_uri
from reports.load import AttackFile, RunData, as_dict, as_float, as_list, load_run

TEMPLATES = Path(__file__).parent / "templates"
BASELINE_ALGORITHMS = ("local", "centralized")

_SETUP_FIELDS = (
    ("algorithm", "algorithm"), ("archs", "client architectures"), ("server_arch", "server architecture"),
    ("num_clients", "clients"), ("clients_per_round", "clients per round"), ("rounds", "rounds"),
    ("local_epochs", "local epochs"), ("batch_size", "batch size"), ("lr", "learning rate"),
    ("optimizer", "optimizer"), ("momentum", "momentum"), ("mu", "FedProx mu"), ("aggregation", "aggregation"),
    ("server_epochs", "server epochs"), ("common_width", "common width h"), ("shared_width", "shared width"),
    ("image_size", "image size"), ("num_classes", "classes (count)"), ("seed", "seed"), ("observe", "observed rounds"),
    ("device", "device"), ("privfed_version", "privfed version"),
)

_INVERSION_COLUMNS = ("method", "target", "knowledge", "source", "round", "client", "batch_size", "local_steps", "iterations")


@dataclass
class ImageView:
    caption: str
    image: Embedded | None  # None: withheld on purpose (redacted)


@dataclass
class InversionResultView:
    fields: dict[str, Any]
    result: dict[str, Any]
    reconstructions: ImageView
    originals: ImageView
    samples: list[dict[str, Any]]


@dataclass
class AttackFileView:
    name: str
    target: str
    inversion: list[InversionResultView] = field(default_factory=list)
    membership: list[dict[str, Any]] = field(default_factory=list)
    roc_uri: str | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)
    psnr_cap: float | None = None


@dataclass
class RunView:
    label: str
    folder: str
    setup: list[tuple[str, Any]]
    data: Any
    classes: list[str]
    split_sizes: dict[str, Any] | None
    dp: dict[str, Any]
    command: str | None
    summary: dict[str, Any] | None
    rounds_done: int
    final_clients: list[dict[str, Any]]
    round_rows: list[dict[str, Any]]
    accuracy: float | None
    accuracy_source: str
    utility_uri: str | None
    communication_uri: str | None
    communication_rounds: list[dict[str, Any]]
    communication_clients: list[dict[str, Any]]
    bytes_up_total: float | None
    bytes_down_total: float | None
    inversion: list[AttackFileView]
    membership: list[AttackFileView]
    threat_models: list[dict[str, str]]
    comparison: ComparisonRow
    baselines: list[tuple[str, float]]


def _classes(run: RunData) -> list[str]:
    for source in (run.config.get("classes"), (run.split or {}).get("classes")):
        if isinstance(source, list) and source:
            return [str(c) for c in source]
    return []


def _label_name(label: Any, classes: list[str]) -> str:
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(classes):
        return f"{classes[label]} ({label})"
    return "—" if label is None else str(label)


def _split_sizes(run: RunData) -> dict[str, Any] | None:
    if run.split is None:
        return None
    clients = [len(c) if isinstance(c, list) else 0 for c in as_list(run.split.get("clients"))]
    return {
        "clients": clients,
        "clients_total": sum(clients),
        "server": len(as_list(run.split.get("server"))),
        "test": len(as_list(run.split.get("test"))),
        "plan": run.split.get("plan"),
        "seed": run.split.get("seed"),
    }


def _utility(run: RunData, baselines: Sequence[tuple[str, float]]) -> str | None:
    if not run.metrics:
        return None
    rounds = [as_float(m.get("round")) for m in run.metrics]
    if any(r is None for r in rounds):
        rounds = [float(i + 1) for i in range(len(run.metrics))]
    per_client_acc: dict[str, figures.Series] = {}
    per_client_auc: dict[str, figures.Series] = {}
    for r, m in zip(rounds, run.metrics):
        for c in as_list(m.get("clients")):
            if not isinstance(c, dict):
                continue
            name = f"client {c.get('id', '?')}"
            per_client_acc.setdefault(name, figures.Series(name, [], [])).x.append(r)
            per_client_acc[name].y.append(as_float(c.get("test_accuracy")))
            per_client_auc.setdefault(name, figures.Series(name, [], [])).x.append(r)
            per_client_auc[name].y.append(as_float(c.get("test_auc")))
    accuracy = list(per_client_acc.values())
    auc = list(per_client_auc.values())
    for prefix in ("global", "server"):
        accs = [as_float(m.get(f"{prefix}_test_accuracy")) for m in run.metrics]
        aucs = [as_float(m.get(f"{prefix}_test_auc")) for m in run.metrics]
        if any(a is not None for a in accs + aucs):
            accuracy.append(figures.Series(prefix, rounds, accs, emphasis=True))
            auc.append(figures.Series(prefix, rounds, aucs, emphasis=True))
    return png_data_uri(figures.utility_figure(accuracy, auc, baselines))


def _round_rows(run: RunData) -> list[dict[str, Any]]:
    rows = []
    for m in run.metrics:
        for c in as_list(m.get("clients")):
            if isinstance(c, dict):
                rows.append({"round": m.get("round"), **c})
    return rows


def _communication(run: RunData) -> tuple[str | None, list[dict[str, Any]], list[dict[str, Any]]]:
    if not run.metrics:
        return None, [], []
    rounds = []
    clients: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(run.metrics):
        rounds.append({"round": m.get("round", i + 1), "up": m.get("bytes_up"), "down": m.get("bytes_down"),
                       "seconds": m.get("seconds")})
        for c in as_list(m.get("clients")):
            if not isinstance(c, dict):
                continue
            row = clients.setdefault(str(c.get("id", "?")), {"id": c.get("id", "?"), "arch": c.get("arch"),
                                                             "up": 0.0, "down": 0.0, "rounds": 0})
            row["up"] += as_float(c.get("bytes_up")) or 0.0
            row["down"] += as_float(c.get("bytes_down")) or 0.0
            row["rounds"] += 1
    for row in clients.values():
        row["up_per_round"] = row["up"] / row["rounds"] if row["rounds"] else None
        row["down_per_round"] = row["down"] / row["rounds"] if row["rounds"] else None
    xs = [float(as_float(r["round"]) or i + 1) for i, r in enumerate(rounds)]
    uri = png_data_uri(figures.communication_figure(xs, [as_float(r["up"]) for r in rounds],
                                                    [as_float(r["down"]) for r in rounds]))
    return uri, rounds, list(clients.values())


def _embed(run: RunData, relative: object) -> Embedded:
    """Image paths in attack JSONs are relative to attacks/; accept run-relative ones too."""
    image = embed_png(run.attacks_dir, relative)
    if image.uri is None and image.problem == "image file missing":
        fallback = embed_png(run.path, relative)
        if fallback.uri is not None:
            return fallback
    return image


def _inversion_view(run: RunData, attack: AttackFile, classes: list[str], redact: bool) -> AttackFileView:
    view = AttackFileView(name=attack.name, target=attack.target, skipped=attack.skipped, psnr_cap=attack.psnr_cap)
    for result in attack.results:
        images = as_dict(result.get("images"))
        metrics_line = f"PSNR mean {_n(result.get('psnr_mean'), 1)} dB (max {_n(result.get('psnr_max'), 1)}), " \
                       f"SSIM mean {_n(result.get('ssim_mean'), 2)} (max {_n(result.get('ssim_max'), 2)})"
        recon = ImageView(f"reconstructions: {metrics_line}", _embed(run, images.get("reconstructions")))
        if redact:
            originals = ImageView(f"originals withheld (--redact-originals); reconstructions scored {metrics_line}", None)
        else:
            originals = ImageView("true images (originals)", _embed(run, images.get("originals")))
        samples = []
        for s in as_list(result.get("samples")):
            if isinstance(s, dict):
                samples.append({**s, "label_name": _label_name(s.get("label"), classes),
                                "predicted_name": _label_name(s.get("predicted_label"), classes)})
        fields = {k: result.get(k) for k in _INVERSION_COLUMNS}
        view.inversion.append(InversionResultView(fields, result, recon, originals, samples))
    return view


def _n(value: Any, digits: int) -> str:
    number = as_float(value)
    return "—" if number is None else f"{number:.{digits}f}"


def _membership_view(attack: AttackFile) -> AttackFileView:
    view = AttackFileView(name=attack.name, target=attack.target, membership=list(attack.results), skipped=attack.skipped)
    curves = []
    for r in attack.results:
        roc = as_dict(r.get("roc"))
        fpr = [as_float(v) for v in as_list(roc.get("fpr"))]
        tpr = [as_float(v) for v in as_list(roc.get("tpr"))]
        pairs = [(f, t) for f, t in zip(fpr, tpr) if f is not None and t is not None]
        if pairs:
            label = f"{r.get('method', '?')} / {r.get('knowledge', '?')} / {r.get('model', '?')} (AUC {_n(r.get('auc'), 3)})"
            curves.append(figures.RocCurve(label, [p[0] for p in pairs], [p[1] for p in pairs]))
    if curves:
        view.roc_uri = png_data_uri(figures.roc_figure(curves))
    return view


def _threat_models(run: RunData) -> list[dict[str, str]]:
    seen: dict[tuple, dict[str, str]] = {}
    for attack in run.inversion + run.membership:
        for r in attack.results:
            key = (attack.kind, str(r.get("method")), str(r.get("knowledge")), str(r.get("threat_model")))
            seen.setdefault(key, {"attack": attack.kind, "method": key[1], "knowledge": key[2], "threat_model": key[3]})
    return list(seen.values())


def _run_view(run: RunData, label: str, baselines: Sequence[tuple[str, float]], redact: bool) -> RunView:
    classes = _classes(run)
    accuracy, source = final_accuracy(run)
    summary = run.summary
    final_clients = [c for c in as_list((summary or (run.metrics[-1] if run.metrics else {})).get("clients")) if isinstance(c, dict)]
    comm_uri, comm_rounds, comm_clients = _communication(run)
    up_total = as_float(summary.get("bytes_up_total")) if summary else None
    down_total = as_float(summary.get("bytes_down_total")) if summary else None
    if up_total is None and comm_rounds:
        up_total = sum(as_float(r["up"]) or 0.0 for r in comm_rounds)
        down_total = sum(as_float(r["down"]) or 0.0 for r in comm_rounds)
    others = [b for b in baselines if b[0] != label]
    return RunView(
        label=label,
        folder=run.path.name,
        setup=[(name, run.config.get(key)) for key, name in _SETUP_FIELDS if key in run.config],
        data=run.config.get("data"),
        classes=classes,
        split_sizes=_split_sizes(run),
        dp=as_dict(run.config.get("dp")),
        command=run.config.get("command") if isinstance(run.config.get("command"), str) else None,
        summary=summary,
        rounds_done=len(run.metrics),
        final_clients=final_clients,
        round_rows=_round_rows(run),
        accuracy=accuracy,
        accuracy_source=source,
        utility_uri=_utility(run, others),
        communication_uri=comm_uri,
        communication_rounds=comm_rounds,
        communication_clients=comm_clients,
        bytes_up_total=up_total,
        bytes_down_total=down_total,
        inversion=[_inversion_view(run, a, classes, redact) for a in run.inversion],
        membership=[_membership_view(a) for a in run.membership],
        threat_models=_threat_models(run),
        comparison=comparison_row(run, label),
        baselines=others,
    )


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


def render_report(runs: Sequence[RunData], redact_originals: bool = False, title: str | None = None) -> str:
    """The report's HTML text for already-loaded runs."""
    if not runs:
        raise PrivfedError("privfed report: no run directories given; pass at least one RUN")
    labels = run_labels(runs)
    baselines = []
    for run, label in zip(runs, labels):
        if run.algorithm in BASELINE_ALGORITHMS:
            accuracy, _ = final_accuracy(run)
            if accuracy is not None:
                baselines.append((label, accuracy))
    views = [_run_view(run, label, baselines, redact_originals) for run, label in zip(runs, labels)]
    rows = [v.comparison for v in views]
    tradeoff_uri = None
    if len(runs) > 1:
        points = [figures.TradeoffPoint(r.label, r.accuracy, r.best_psnr, r.mia_auc) for r in rows]
        tradeoff_uri = png_data_uri(figures.privacy_utility_figure(points))
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title or ("privfed privacy report: " + ", ".join(labels)),
        version=__version__,
        redacted=redact_originals,
        runs=views,
        rows=rows,
        verdicts=verdicts(rows),
        tradeoff_uri=tradeoff_uri,
    )


def build_report(run_dirs: list[Path], out: Path, redact_originals: bool = False, title: str | None = None) -> Path:
    """Read ``run_dirs`` (JSON and PNG only) and write one self-contained HTML report to ``out``."""
    out = Path(out)
    if out.is_dir():
        raise PrivfedError(f"--out {out}: is a folder; pass a file name such as {out / 'report.html'}")
    runs = [load_run(Path(p)) for p in run_dirs]
    html = render_report(runs, redact_originals=redact_originals, title=title)
    atomic_write_text(out, html)
    return out
