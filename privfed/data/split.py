"""Who holds which images: disjoint, class-stratified client/server/test splits.

A plan says how many images each party gets; :func:`make_split` deals sample ids out so that
parties are disjoint and each party's class mix matches the pool's within one image per class
(see :mod:`privfed.data.allocation`), or, with ``dirichlet_alpha``, so that clients get the
label skew of Hsu et al. (2019) while the server and the test set stay stratified. Everything
is drawn from ``numpy.random.default_rng(seed)`` over ids sorted by name, so the same data and
seed give the same ``split.json`` on any machine. Plan kinds live in :data:`PLANS`, so the CLI's
``--plan`` choices come from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from privfed.data.allocation import dirichlet_table, stratified_table
from privfed.errors import PrivfedError
from privfed.io import read_json, write_json
from privfed.registry import Registry

SPLIT_FORMAT_VERSION = 1

#: The seed project's reference plan: 4 clients x 1176, server 1176, test 2520 (8400 images).
REFERENCE_CLIENT_SIZE = 1176
REFERENCE_SERVER_SIZE = 1176
REFERENCE_TEST_SIZE = 2520
REFERENCE_NUM_CLIENTS = 4


@dataclass(frozen=True)
class PartySizes:
    clients: list[int]
    server: int
    test: int

    @property
    def total(self) -> int:
        return sum(self.clients) + self.server + self.test

    def describe(self) -> str:
        sizes = set(self.clients)
        clients = f"{len(self.clients)} clients x {self.clients[0]}" if len(sizes) == 1 else f"clients {'+'.join(map(str, self.clients))}"
        return f"{clients} + server {self.server} + test {self.test}"


#: plan kind -> (plan, num_clients, pool size) -> party sizes; the docstring is the CLI help.
PLANS: Registry[Callable[["SplitPlan", int, int], PartySizes]] = Registry("plan", "--plan")


@PLANS.register("seed")
def _reference_sizes(plan: SplitPlan, num_clients: int, available: int) -> PartySizes:
    """the reference plan: 1176 images per client, server 1176, test 2520 (8400 for 4 clients)"""
    return PartySizes([REFERENCE_CLIENT_SIZE] * num_clients, REFERENCE_SERVER_SIZE, REFERENCE_TEST_SIZE)


@PLANS.register("fractions")
def _fraction_sizes(plan: SplitPlan, num_clients: int, available: int) -> PartySizes:
    """shares of the data: clients together 0.6 (equal parts), server 0.15, test 0.25 by default"""
    per_client = math.floor(plan.clients_fraction * available / num_clients + 1e-9)
    return PartySizes(
        [per_client] * num_clients,
        math.floor(plan.server_fraction * available + 1e-9),
        math.floor(plan.test_fraction * available + 1e-9),
    )


@PLANS.register("sizes")
def _explicit_sizes(plan: SplitPlan, num_clients: int, available: int) -> PartySizes:
    """explicit --client-size, --server-size and --test-size"""
    return PartySizes([plan.client_size] * num_clients, plan.server_size, plan.test_size)


_SIZE_FIELDS = ("client_size", "server_size", "test_size")
_FRACTION_FIELDS = ("clients_fraction", "server_fraction", "test_fraction")
_DEFAULT_FRACTIONS = {"clients_fraction": 0.6, "server_fraction": 0.15, "test_fraction": 0.25}
_OPTION = {name: "--" + name.replace("_", "-") for name in (*_SIZE_FIELDS, *_FRACTION_FIELDS, "dirichlet_alpha")}


@dataclass(frozen=True)
class SplitPlan:
    """How many images each party gets. Fields that do not apply to ``kind`` are None."""

    kind: str = "seed"
    client_size: int | None = None
    server_size: int | None = None
    test_size: int | None = None
    clients_fraction: float | None = None
    server_fraction: float | None = None
    test_fraction: float | None = None
    dirichlet_alpha: float | None = None

    def __post_init__(self) -> None:
        PLANS.get(self.kind)
        sizes = {name: getattr(self, name) for name in _SIZE_FIELDS}
        fractions = {name: getattr(self, name) for name in _FRACTION_FIELDS}
        if self.kind == "seed":
            self._refuse(fractions, "applies only to --plan fractions")
            reference = dict(zip(_SIZE_FIELDS, (REFERENCE_CLIENT_SIZE, REFERENCE_SERVER_SIZE, REFERENCE_TEST_SIZE)))
            for name, value in sizes.items():
                if value is not None and value != reference[name]:
                    raise PrivfedError(f"{_OPTION[name]} {value}: --plan seed fixes the sizes; use --plan sizes to choose them")
                object.__setattr__(self, name, reference[name])
        elif self.kind == "sizes":
            self._refuse(fractions, "applies only to --plan fractions")
            for name, value in sizes.items():
                if value is None:
                    raise PrivfedError(f"{_OPTION[name]} is required with --plan sizes (or use --plan fractions)")
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                    raise PrivfedError(f"{_OPTION[name]} {value!r}: must be a whole number >= 0")
                object.__setattr__(self, name, int(value))
            if self.client_size == 0:
                raise PrivfedError("--client-size 0: every client needs at least one image")
        else:  # fractions
            self._refuse(sizes, "applies only to --plan sizes")
            for name, value in fractions.items():
                value = _DEFAULT_FRACTIONS[name] if value is None else value
                if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                    raise PrivfedError(f"{_OPTION[name]} {value!r}: must be a fraction between 0 and 1")
                object.__setattr__(self, name, float(value))
            if self.clients_fraction + self.server_fraction + self.test_fraction > 1.0 + 1e-9:
                raise PrivfedError(
                    f"--clients-fraction {self.clients_fraction} + --server-fraction {self.server_fraction} + "
                    f"--test-fraction {self.test_fraction} is more than 1; lower one of them"
                )
        if self.dirichlet_alpha is not None and not (isinstance(self.dirichlet_alpha, (int, float)) and self.dirichlet_alpha > 0):
            raise PrivfedError(f"--dirichlet-alpha {self.dirichlet_alpha!r}: must be > 0 (e.g. 0.5 for strong label skew, 100 for almost none)")

    def _refuse(self, values: dict[str, Any], why: str) -> None:
        for name, value in values.items():
            if value is not None:
                raise PrivfedError(f"{_OPTION[name]} {value}: {why}, not --plan {self.kind}")

    def sizes_for(self, num_clients: int, available: int) -> PartySizes:
        if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
            raise PrivfedError(f"--clients {num_clients!r}: must be at least 1")
        return PLANS.get(self.kind)(self, int(num_clients), int(available))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitPlan:
        """Unknown keys are ignored: later versions may add fields, never rename them."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Split:
    """Sample ids per party; ``clients[k]`` is client k's private data."""

    clients: list[list[str]]
    server: list[str]
    test: list[str]
    seed: int
    plan: SplitPlan = field(default_factory=SplitPlan)
    classes: list[str] = field(default_factory=list)

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    def parties(self) -> dict[str, list[str]]:
        """``{"client_0": [...], ..., "server": [...], "test": [...]}``."""
        named = {f"client_{k}": ids for k, ids in enumerate(self.clients)}
        return {**named, "server": self.server, "test": self.test}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": SPLIT_FORMAT_VERSION,
            "seed": self.seed,
            "plan": self.plan.to_dict(),
            "classes": list(self.classes),
            "num_clients": self.num_clients,
            "clients": [list(ids) for ids in self.clients],
            "server": list(self.server),
            "test": list(self.test),
        }


def _pool(dataset: Any) -> tuple[list[str], np.ndarray, list[str], str]:
    if isinstance(dataset, tuple) and len(dataset) == 2:
        ids, labels = dataset
        labels = np.asarray(labels, dtype=np.int64)
        num_classes = int(labels.max()) + 1 if len(labels) else 0
        return list(ids), labels, [f"class_{k}" for k in range(num_classes)], "the given pool"
    return list(dataset.ids), np.asarray(dataset.labels, dtype=np.int64), list(dataset.classes), getattr(dataset, "source", "the dataset")


def make_split(dataset: Any, num_clients: int = REFERENCE_NUM_CLIENTS, plan: SplitPlan | None = None, seed: int = 0) -> Split:
    """Deal ``dataset``'s ids (an ImageDataset, or an ``(ids, labels)`` pair) to the parties."""
    plan = plan or SplitPlan()
    ids, labels, classes, source = _pool(dataset)
    if len(ids) != len(labels):
        raise ValueError("ids and labels must have the same length")
    sizes = plan.sizes_for(num_clients, len(ids))
    if sizes.total > len(ids):
        hint = "use --plan fractions or smaller sizes" if plan.kind == "seed" else "use smaller sizes or fractions, or fewer clients"
        name = "the reference plan" if plan.kind == "seed" else f"the {plan.kind} plan"
        raise PrivfedError(f"{name} needs {sizes.total} images ({sizes.describe()}) but {source} has {len(ids)}; {hint}")
    if min(sizes.clients) < 1:
        raise PrivfedError(f"{source}: {len(ids)} images leave nothing for {num_clients} clients under the {plan.kind} plan; use fewer clients or larger fractions")
    rng = np.random.default_rng(seed)
    num_classes = max(len(classes), int(labels.max()) + 1 if len(labels) else 0)
    by_class = [sorted(i for i, y in zip(ids, labels) if y == c) for c in range(num_classes)]
    counts = [len(members) for members in by_class]
    leftover = len(ids) - sizes.total
    if plan.dirichlet_alpha is None:
        table = stratified_table([*sizes.clients, sizes.server, sizes.test, leftover], counts)
    else:
        coarse = stratified_table([sum(sizes.clients), sizes.server, sizes.test, leftover], counts)
        clients = dirichlet_table(sizes.clients, coarse[0].tolist(), float(plan.dirichlet_alpha), rng)
        table = np.vstack([clients, coarse[1:]])
    parties: list[list[str]] = [[] for _ in range(len(table) - 1)]  # the last row is unused images
    for c, members in enumerate(by_class):
        shuffled = [members[i] for i in rng.permutation(len(members))]
        start = 0
        for p, party in enumerate(parties):
            party.extend(shuffled[start : start + table[p, c]])
            start += table[p, c]
    parties = [[party[i] for i in rng.permutation(len(party))] for party in parties]
    k = len(sizes.clients)
    return Split(clients=parties[:k], server=parties[k], test=parties[k + 1], seed=int(seed), plan=plan, classes=classes)


def save_split(split: Split, path: str | Path) -> None:
    write_json(path, split.to_dict())


def _id_list(value: Any, what: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PrivfedError(f"{path}: {what} must be a list of sample-id strings; make a new split with 'privfed data split'")
    return value


def load_split(path: str | Path) -> Split:
    """Read and check ``split.json``: structure, format version, and that parties are disjoint."""
    path = Path(path)
    data = read_json(path)
    redo = "make a new one with 'privfed data split'"
    if not isinstance(data, dict):
        raise PrivfedError(f"{path}: not a split file (expected a JSON object); {redo}")
    version = data.get("format_version")
    if version != SPLIT_FORMAT_VERSION:
        raise PrivfedError(f"{path}: format_version {version!r}, this privfed reads {SPLIT_FORMAT_VERSION}; {redo}")
    missing = [k for k in ("seed", "clients", "server", "test") if k not in data]
    if missing:
        raise PrivfedError(f"{path}: missing {', '.join(missing)}; {redo}")
    clients = data["clients"]
    if not isinstance(clients, list) or not clients:
        raise PrivfedError(f"{path}: 'clients' must be a non-empty list of id lists; {redo}")
    clients = [_id_list(ids, f"clients[{k}]", path) for k, ids in enumerate(clients)]
    server = _id_list(data["server"], "'server'", path)
    test = _id_list(data["test"], "'test'", path)
    if "num_clients" in data and data["num_clients"] != len(clients):
        raise PrivfedError(f"{path}: num_clients is {data['num_clients']} but 'clients' has {len(clients)} lists; {redo}")
    seen: dict[str, str] = {}
    for party, ids in [*((f"client {k}", c) for k, c in enumerate(clients)), ("server", server), ("test", test)]:
        for sample_id in ids:
            if sample_id in seen:
                raise PrivfedError(f"{path}: sample {sample_id!r} is in both {seen[sample_id]} and {party}; parties must be disjoint; {redo}")
            seen[sample_id] = party
    classes = data.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise PrivfedError(f"{path}: 'classes' must be a list of class names; {redo}")
    plan_data = data.get("plan") or {}
    if not isinstance(plan_data, dict):
        raise PrivfedError(f"{path}: 'plan' must be an object; {redo}")
    try:
        plan = SplitPlan.from_dict(plan_data)
    except PrivfedError as exc:
        raise PrivfedError(f"{path}: its plan is not valid ({exc}); {redo}") from None
    seed = data["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PrivfedError(f"{path}: 'seed' must be a whole number; {redo}")
    return Split(clients=clients, server=server, test=test, seed=seed, plan=plan, classes=classes)


def class_counts(ids: Sequence[str], dataset: Any) -> np.ndarray:
    """How many of ``ids`` fall in each class of ``dataset``."""
    labels = np.asarray(dataset.labels)[dataset.positions(ids)] if len(ids) else np.zeros(0, dtype=np.int64)
    return np.bincount(labels, minlength=len(dataset.classes))
