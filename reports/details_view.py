"""The folded details: set-up in words, threat models once per attack type, the commands that
reproduce each arm, links to the raw files, training per round, per-image figures, the DP
audit and the attacks on targets the server does not receive.

Everything here sits inside ``<details>`` (no scripts): a reader who wants the answer never
scrolls past it, an auditor opens it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports import evidence_view, figures, fmt, membership_view
from reports.images import png_data_uri
from reports.labels import ALGORITHM_MEANING
from reports.load import RunData, as_float, as_list
from reports.setup_words import classes
from reports.summary import ArmSummary, StudySummary
from reports.verdict import POSITION_NAMES, POSITIONS

RUN_FILES = ("config.json", "split.json", "metrics.jsonl", "summary.json")
KNOWLEDGE_MEANING = {
    "none": "the server knows only what it observed (for partial-weight runs it uses its own model as a surrogate backbone)",
    "init": "the server also knows the weights it initialised the client with",
    "full": "an oracle knows the client's real private weights: an upper bound no real server reaches",
}


@dataclass
class Link:
    name: str
    href: str


@dataclass
class ImageRow:
    number: int
    sample_id: str
    label: str
    predicted: str
    psnr: str
    null_psnr: str
    rank: str


@dataclass
class ImageTable:
    title: str
    rows: list[ImageRow]
    #: the earlier table these images repeat (identical knowledge levels), shown instead of the rows
    same_as: str = ""


@dataclass
class ArmDetails:
    label: str
    folder: str
    setup: list[tuple[str, str]]
    commands: list[str]
    files: list[Link]
    unfinished: str
    training_uri: str | None
    clients: list[dict[str, Any]]
    audit: membership_view.Audit
    images: list[ImageTable]
    other_targets: list[evidence_view.TableView]


@dataclass
class ThreatModel:
    attack: str
    text: str


@dataclass
class DetailsView:
    threat_models: list[ThreatModel]
    knowledge: list[tuple[str, str]]
    arms: list[ArmDetails] = field(default_factory=list)


def href(path: Path, base: Path | None) -> str:
    """A link to a run file, relative to the report's folder (always starting with './' or '../' or '/')."""
    if base is None:
        return path.resolve().as_posix()
    relative = Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    return relative if relative.startswith(("../", "/")) else "./" + relative


def _files(run: RunData, base: Path | None) -> list[Link]:
    names = [name for name in RUN_FILES if (run.path / name).is_file()]
    names += [f"attacks/{f.name}" for f in run.inversion + run.membership]
    return [Link(name, href(run.path / name, base)) for name in names]


def _commands(arm: ArmSummary) -> list[str]:
    return ([arm.train_command] if arm.train_command else []) + arm.attack_commands


def _setup(arm: ArmSummary) -> list[tuple[str, str]]:
    config = arm.run.config
    rows = [("scheme", ALGORITHM_MEANING.get(arm.algorithm, arm.algorithm)), ("training", arm.training or "not recorded"),
            ("differential privacy", arm.dp)]
    if arm.headline_target:
        rows.append(("what the server receives", "the whole model" if arm.headline_target == "full-model" else
                     "the shared layer only"))
    observed = [str(r) for r in as_list(config.get("observe"))]
    if observed:
        rows.append(("rounds recorded for the attacks", ", ".join(observed)))
    for key, name in (("seed", "seed"), ("device", "device"), ("privfed_version", "privfed version")):
        if key in config:
            rows.append((name, fmt.text(config.get(key))))
    return rows


def _training_uri(arm: ArmSummary, chance: float | None) -> str | None:
    metrics = arm.run.metrics
    if not metrics:
        return None
    rounds = [as_float(m.get("round")) or float(i + 1) for i, m in enumerate(metrics)]
    series: dict[str, figures.Series] = {}
    for r, m in zip(rounds, metrics):
        for c in as_list(m.get("clients")):
            if isinstance(c, dict):
                name = f"client {c.get('id', '?')}"
                series.setdefault(name, figures.Series(name, [], [])).x.append(r)
                series[name].y.append(as_float(c.get("test_accuracy")))
    lines = list(series.values())
    for prefix, name in (("global", "global model"), ("server", "server model")):
        values = [as_float(m.get(f"{prefix}_test_accuracy")) for m in metrics]
        if any(v is not None for v in values):
            lines.append(figures.Series(name, rounds, values, emphasis=True))
    if not any(v is not None for s in lines for v in s.y):
        return None
    return png_data_uri(figures.training_figure(lines, chance))


def _clients(run: RunData) -> list[dict[str, Any]]:
    source = run.summary if run.summary is not None else (run.metrics[-1] if run.metrics else {})
    return [c for c in as_list(source.get("clients")) if isinstance(c, dict)]


def _label_name(label: Any, names: list[str]) -> str:
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(names):
        return f"{names[label]} ({label})"
    return fmt.text(label)


def _image_tables(arm: ArmSummary) -> list[ImageTable]:
    names = classes(arm.run)
    tables: list[ImageTable] = []
    seen: dict[tuple, str] = {}
    for position in POSITIONS:
        block = arm.inversion_positions.get(position)
        if not block:
            continue
        row = next((r for f in arm.inversion_files for r in f.results
                    if all(r.get(k) == block.get(k) for k in ("method", "knowledge", "source", "round", "client"))), None)
        if row is None:
            continue
        title = f"{POSITION_NAMES[position].capitalize()}: {block.get('method')} (knowledge {block.get('knowledge')})"
        key = tuple(row.get(k) for k in ("method", "source", "round", "client")) + \
            (row.get("same_as_knowledge") or row.get("knowledge"),)
        if key in seen:
            tables.append(ImageTable(title, [], same_as=seen[key]))
            continue
        seen[key] = title
        nulls = as_list(row.get("null_psnrs")) if row.get("gain_paired") is True else []
        rows = []
        for i, s in enumerate(s for s in as_list(row.get("samples")) if isinstance(s, dict)):
            rank = s.get("identification_rank")
            rows.append(ImageRow(i + 1, fmt.text(s.get("sample_id")), _label_name(s.get("label"), names),
                                 _label_name(s.get("predicted_label"), names), fmt.num(s.get("psnr"), 1),
                                 fmt.num(nulls[i], 1) if i < len(nulls) else "unpaired",
                                 f"{rank} of {row.get('identification_pool')}" if isinstance(rank, int) else "—"))
        tables.append(ImageTable(title, rows))
    return tables


def _unfinished(run: RunData) -> str:
    if run.summary is not None:
        return ""
    if run.metrics:
        return f"Training did not finish: no summary.json; figures come from the {len(run.metrics)} round(s) in metrics.jsonl."
    return "Training did not finish: no summary.json, and no round finished (metrics.jsonl is missing or empty)."


def arm_details(arm: ArmSummary, base: Path | None, chance: float | None) -> ArmDetails:
    return ArmDetails(arm.label, arm.folder, _setup(arm), _commands(arm), _files(arm.run, base), _unfinished(arm.run),
                      _training_uri(arm, chance), _clients(arm.run), membership_view.audit(arm), _image_tables(arm),
                      [evidence_view.table_view(t) for t in arm.other_evidence])


def threat_models(summary: StudySummary) -> list[ThreatModel]:
    """One sentence per attack type: inversion per target and source, membership per method and target,
    taken from the weakest knowledge level attacked (the levels are explained once beside them)."""
    seen: dict[tuple, ThreatModel] = {}
    for arm in summary.arms:
        for attack in arm.inversion_files + arm.membership_files:
            for row in sorted(attack.results, key=lambda r: ("none", "init", "full").index(r.get("knowledge"))
                              if r.get("knowledge") in ("none", "init", "full") else 3):
                if attack.kind == "inversion":
                    source = "real update (realistic)" if row.get("source") == "observed" else "replayed gradient (worst case)"
                    key, name = ("inversion", attack.target, row.get("source")), f"gradient inversion, {attack.target}, {source}"
                else:
                    key, name = ("membership", attack.target, row.get("method")), f"membership ({row.get('method')}), {attack.target}"
                if key not in seen and isinstance(row.get("threat_model"), str):
                    seen[key] = ThreatModel(name, row["threat_model"])
    return list(seen.values())


def build(summary: StudySummary, base: Path | None, chance: float | None) -> DetailsView:
    view = DetailsView(threat_models(summary), list(KNOWLEDGE_MEANING.items()))
    view.arms = [arm_details(a, base, chance) for a in summary.everything]
    return view
