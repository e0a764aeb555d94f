"""Per-row evidence of one arm as a compact table: rows are attacks, columns knowledge levels.

The attack runners attack knowledge levels whose attacker models are identical only once
and write the other levels as copies (``same_as_knowledge``): for FedAvg every client
starts the round from the global model, so "none", "init" and "full" are the same
attacker. The table therefore keeps a column only for a level that is attacked in its own
right somewhere, and a copy shares its original's cell (one cell spanning adjacent
identical levels, with a note), so no figure is shown twice as if it were two findings.

Intervals here are the rows' own 95% intervals. The study's answer never takes a maximum
over these rows: it uses the familywise ``positions`` blocks, whose rows are marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reports.load import AttackFile, as_dict, as_float

KNOWLEDGE_ORDER = ("none", "init", "full")
KNOWLEDGE_WORDS = {
    "none": "knowledge none: what the server observed",
    "init": "knowledge init: + the client's initial weights",
    "full": "knowledge full: the client's real weights (oracle)",
}


@dataclass(frozen=True)
class Cell:
    """One attack row's figures at one or more identical knowledge levels (``row`` None: not attacked)."""

    row: dict[str, Any] | None
    knowledges: tuple[str, ...] = ()
    span: int = 1
    #: an identical level shown in another, non-adjacent cell
    same_as: str | None = None
    #: attacker positions whose familywise headline is this row
    headline_of: tuple[str, ...] = ()

    @property
    def absent(self) -> bool:
        return self.row is None

    @property
    def merged(self) -> bool:
        return len(self.knowledges) > 1


@dataclass
class EvidenceRow:
    kind: str  # "inversion" | "membership"
    method: str
    setting: str  # in words: which update or model was attacked
    cells: list[Cell]


@dataclass
class Column:
    knowledge: str
    #: levels never attacked in their own right whose rows are all copies of this one
    aliases: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return " = ".join((self.knowledge,) + self.aliases)

    @property
    def meaning(self) -> str:
        if self.aliases:
            return "identical attacker models: " + "; ".join(KNOWLEDGE_WORDS.get(k, k) for k in (self.knowledge,) + self.aliases)
        return KNOWLEDGE_WORDS.get(self.knowledge, self.knowledge)


@dataclass
class EvidenceTable:
    target: str
    columns: list[Column]
    rows: list[EvidenceRow]
    #: "client 0, round 1" when every row shares them (so rows need not repeat it)
    scope: str = ""
    skipped: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def has_merged_cells(self) -> bool:
        return any(c.merged for r in self.rows for c in r.cells) or any(c.aliases for c in self.columns)


def _key(row: dict[str, Any]) -> tuple:
    if row.get("attack") == "membership" or "auc" in row:
        return ("membership", str(row.get("method")), str(row.get("model")))
    return ("inversion", str(row.get("method")), str(row.get("source")), row.get("round"), row.get("client"))


def _groups(results: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, dict[str, Any]]]:
    """Row key -> knowledge level -> result, in file order."""
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(_key(result), {}).setdefault(str(result.get("knowledge")), result)
    return groups


def canonical(level: str, group: dict[str, dict[str, Any]]) -> str:
    """The level whose row a copy repeats (following ``same_as_knowledge``), or the level itself."""
    seen = {level}
    while True:
        twin = group.get(level, {}).get("same_as_knowledge")
        if not isinstance(twin, str) or twin not in group or twin in seen:
            return level
        seen.add(twin)
        level = twin


def _ordered(levels: set[str]) -> list[str]:
    return [k for k in KNOWLEDGE_ORDER if k in levels] + sorted(levels - set(KNOWLEDGE_ORDER))


def columns_of(groups: dict[tuple, dict[str, dict[str, Any]]]) -> list[Column]:
    originals = {k for g in groups.values() for k in g if canonical(k, g) == k}
    columns = []
    for level in _ordered(originals):
        copies = {k for g in groups.values() for k in g if k not in originals}
        aliases = tuple(k for k in _ordered(copies)
                        if all(canonical(k, g) == level for g in groups.values() if k in g))
        columns.append(Column(level, aliases))
    return columns


def _setting(key: tuple, row: dict[str, Any], scope_fields: set[str]) -> str:
    if key[0] == "membership":
        model = str(row.get("model"))
        return "global model" if model == "global" else model.replace("client_", "client ") + "'s model"
    if row.get("source") == "replay":
        text = f"replayed one-step gradient, batch {row.get('batch_size')}"
        if as_float(row.get("n_trials")) is not None:
            text += f", {int(row['n_trials'])} images"
    else:
        text = "update the server received"
        if as_float(row.get("n_trials")) is not None:
            text += f", {int(row['n_trials'])} guesses"
    extra = [f"{name} {row.get(name)}" for name in ("client", "round") if name not in scope_fields]
    return text + (" (" + ", ".join(extra) + ")" if extra else "")


def _headline_keys(files: Sequence[AttackFile]) -> dict[tuple, list[tuple[str, str]]]:
    """(row key) -> [(knowledge, position)] of each familywise headline in the files."""
    out: dict[tuple, list[tuple[str, str]]] = {}
    for attack in files:
        for position, block in attack.positions.items():
            block = as_dict(block)
            row = {"attack": attack.kind, "method": block.get("method"), "model": block.get("model"),
                   "source": block.get("source"), "round": block.get("round"), "client": block.get("client")}
            if attack.kind == "membership":
                row["auc"] = block.get("auc")
            out.setdefault(_key(row), []).append((str(block.get("knowledge")), position))
    return out


def _cells(group: dict[str, dict[str, Any]], columns: list[Column], headlines: list[tuple[str, str]]) -> list[Cell]:
    cells: list[Cell] = []
    shown: set[str] = set()
    index = 0
    while index < len(columns):
        level = columns[index].knowledge
        if level not in group:
            cells.append(Cell(None, (level,)))
            index += 1
            continue
        source = canonical(level, group)
        span = 1
        while index + span < len(columns) and columns[index + span].knowledge in group \
                and canonical(columns[index + span].knowledge, group) == source:
            span += 1
        covered = {c.knowledge for c in columns[index:index + span]}
        levels = tuple(k for k in _ordered(set(group)) if canonical(k, group) == source and
                       (k in covered or k not in {c.knowledge for c in columns}))
        marks = tuple(p for k, p in headlines if k in group and canonical(k, group) == source and
                      (k in covered or k not in {c.knowledge for c in columns}))
        cells.append(Cell(group[source], levels, span, same_as=source if source in shown and source not in covered else None,
                          headline_of=tuple(dict.fromkeys(marks))))
        shown |= {source}
        index += span
    return cells


def evidence_table(target: str, files: Sequence[AttackFile]) -> EvidenceTable:
    """The table of every attack in ``files`` (one target's inversion and membership files)."""
    inversion = [r for f in files if f.kind == "inversion" for r in f.results]
    membership = [r for f in files if f.kind == "membership" for r in f.results]
    groups = _groups(inversion + membership)
    columns = columns_of(groups)
    scope_fields = {name for name in ("client", "round")
                    if len({r.get(name) for r in inversion}) == 1 and inversion}
    scope = ", ".join(f"{name} {inversion[0].get(name)}" for name in ("client", "round") if name in scope_fields)
    headlines = _headline_keys(files)
    rows = []
    for key, group in groups.items():
        first = next(iter(group.values()))
        rows.append(EvidenceRow(key[0], key[1], _setting(key, first, scope_fields),
                                _cells(group, columns, headlines.get(key, []))))
    rows.sort(key=lambda r: (r.kind != "inversion",))  # inversion rows first, file order kept within a kind
    skipped = [s for f in files for s in f.skipped]
    return EvidenceTable(target, columns, rows, scope, skipped, [f.name for f in files])
