"""Read one run directory's JSON files into plain Python, tolerating missing pieces.

A report is often made while a run is unfinished or before every attack has been run, so
every optional file (summary, metrics, split, attack results) may be absent: the loader
records it as missing and the report says "not run". Only a path that is not a run
directory at all (no ``config.json``) or a file written with another layout version is an
error. See docs/run-directory.md for every file and field read here.

This module reads JSON only: it never imports torch, the models or the attacks, so a
report can be made on a machine that has only the run directories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privfed.errors import PrivfedError
from privfed.io import read_json, read_jsonl

FORMAT_VERSION = 1


@dataclass
class AttackFile:
    """One ``attacks/<kind>-<target>.json`` file."""

    kind: str  # "inversion" | "membership"
    name: str  # file name, e.g. "inversion-full-model.json"
    target: str
    results: list[dict[str, Any]]
    skipped: list[dict[str, Any]] = field(default_factory=list)  # attacks that could not run, with "reason"
    psnr_cap: float | None = None
    #: per attacker position, the strongest attack with familywise intervals (written by the runners)
    positions: dict[str, Any] = field(default_factory=dict)
    #: the ``privfed attack`` command lines that wrote the file
    commands: list[str] = field(default_factory=list)
    server_receives_target: bool | None = None


@dataclass
class RunData:
    """Everything a report needs from one run directory (raw dicts, as written)."""

    path: Path
    config: dict[str, Any]
    split: dict[str, Any] | None
    metrics: list[dict[str, Any]]
    summary: dict[str, Any] | None
    inversion: list[AttackFile] = field(default_factory=list)
    membership: list[AttackFile] = field(default_factory=list)

    @property
    def algorithm(self) -> str:
        return str(self.config.get("algorithm", "?"))

    @property
    def dp_level(self) -> str:
        dp = self.config.get("dp")
        level = dp.get("level") if isinstance(dp, dict) else None
        return str(level) if level else "none"

    @property
    def attacks_dir(self) -> Path:
        return self.path / "attacks"


def as_float(value: Any) -> float | None:
    """A finite float, or None for anything else (null, strings, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _check_version(path: Path, data: dict[str, Any]) -> None:
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise PrivfedError(
            f"{path}: format_version {version!r}, but this privfed reads version {FORMAT_VERSION}; "
            "make the report with the privfed version that wrote the run"
        )


def _read_object(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise PrivfedError(f"{path}: expected a JSON object, found {type(data).__name__}; the file is damaged, rerun the step that writes it")
    _check_version(path, data)
    return data


def _attack_files(run: Path, kind: str) -> list[AttackFile]:
    folder = run / "attacks"
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.glob(f"{kind}-*.json")):
        data = _read_object(path)
        results = [r for r in as_list(data.get("results")) if isinstance(r, dict)]
        target = str(data.get("target") or path.stem[len(kind) + 1 :])
        skipped = [r for r in as_list(data.get("skipped")) if isinstance(r, dict)]
        receives = data.get("server_receives_target")
        files.append(AttackFile(kind=kind, name=path.name, target=target, results=results, skipped=skipped,
                                psnr_cap=as_float(data.get("psnr_cap")), positions=as_dict(data.get("positions")),
                                commands=[c for c in as_list(data.get("commands")) if isinstance(c, str)],
                                server_receives_target=receives if isinstance(receives, bool) else None))
    return files


def load_run(path: str | Path) -> RunData:
    """Read a run directory; raise :class:`PrivfedError` naming it when it is not one."""
    run = Path(path)
    if not run.is_dir():
        raise PrivfedError(f"{run}: not a run directory (no such folder); pass the folder 'privfed train' wrote")
    config_path = run / "config.json"
    if not config_path.is_file():
        raise PrivfedError(f"{run}: not a run directory (no config.json); pass the folder 'privfed train' wrote")
    config = _read_object(config_path)
    split = _read_object(run / "split.json") if (run / "split.json").is_file() else None
    metrics: list[dict[str, Any]] = []
    if (run / "metrics.jsonl").is_file():
        metrics = [row for row in read_jsonl(run / "metrics.jsonl") if isinstance(row, dict)]
    summary = _read_object(run / "summary.json") if (run / "summary.json").is_file() else None
    return RunData(
        path=run,
        config=config,
        split=split,
        metrics=metrics,
        summary=summary,
        inversion=_attack_files(run, "inversion"),
        membership=_attack_files(run, "membership"),
    )
