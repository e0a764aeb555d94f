"""The attacker's view of a run directory.

An honest-but-curious server knows what it observed (``observed/``), what it initialised the
clients with (``init/``), its own model and data. The oracle files (``oracle/``,
``models/client_<k>``) hold what only the client knew; they are read only for
``knowledge="full"``, the upper bound. Everything an attack needs from a run goes through
this class, so the threat model is enforced in one place (see docs/run-directory.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from privfed import RUN_FORMAT_VERSION
from privfed.errors import PrivfedError
from privfed.io import load_tensors, read_json, read_jsonl, safetensors_header
from privfed.models import SharedHeadModel, build_model
from privfed.models.mapping import embedding_matrix, to_common

KNOWLEDGE_LEVELS = ("none", "init", "full")
FULL_MODEL_ALGORITHMS = ("fedavg", "fedprox", "fednova")
TARGETS = ("full-model", "shared-layer")

KNOWLEDGE_MEANING = {
    "none": "the server knows only what it observed (and, for partial, uses its own model as a surrogate backbone)",
    "init": "the server also knows the weights it initialised the client with (exact in the first round)",
    "full": "oracle upper bound: the attacker knows the client's actual private weights at that round",
}


def server_receives(algorithm: str, target: str) -> bool:
    """Whether ``target`` is what the server really receives (the arm's headline), not a restriction of it."""
    return (target == "full-model") == (algorithm in FULL_MODEL_ALGORITHMS)


def check_knowledge(knowledge: str) -> str:
    if knowledge not in KNOWLEDGE_LEVELS:
        raise PrivfedError(f"unknown --knowledge {knowledge!r}; choose one of: {', '.join(KNOWLEDGE_LEVELS)}")
    return knowledge




@dataclass
class RunView:
    path: Path
    config: dict
    _models: dict = field(default_factory=dict, repr=False)

    # ----- what the run was -------------------------------------------------------------
    @property
    def algorithm(self) -> str:
        return self.config["algorithm"]

    @property
    def num_clients(self) -> int:
        return int(self.config["num_clients"])

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def num_classes(self) -> int:
        return int(self.config.get("num_classes", 2))

    @property
    def dp_level(self) -> str:
        return (self.config.get("dp") or {}).get("level", "none") or "none"

    @property
    def uses_dp_models(self) -> bool:
        return self.dp_level == "sample"

    def client_arch(self, k: int) -> str:
        archs = self.config["archs"]
        return archs[k] if isinstance(archs, list) else archs

    def client_shared_width(self, k: int) -> int:
        widths = self.config.get("shared_width", 1024)
        return int(widths[k] if isinstance(widths, list) else widths)

    @property
    def common_width(self) -> int:
        h = self.config.get("common_width")
        if h:
            return int(h)
        return max(self.client_shared_width(k) for k in range(self.num_clients))

    @cached_property
    def split(self):
        from privfed.data.split import load_split

        return load_split(self.path / "split.json")

    @cached_property
    def summary(self) -> dict | None:
        path = self.path / "summary.json"
        return read_json(path) if path.is_file() else None

    @cached_property
    def metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        return read_jsonl(path) if path.is_file() else []

    def supported_targets(self) -> list[str]:
        if self.algorithm in FULL_MODEL_ALGORITHMS:
            return ["full-model", "shared-layer"]
        if self.algorithm == "partial":
            return ["shared-layer"]
        return []

    def require_target(self, target: str) -> None:
        if target not in TARGETS:
            raise PrivfedError(f"unknown --target {target!r}; choose one of: {', '.join(TARGETS)}")
        supported = self.supported_targets()
        if target not in supported:
            what = ", ".join(supported) if supported else "none (nothing is sent to the server)"
            raise PrivfedError(
                f"--target {target} is not possible on {self.path} (algorithm {self.algorithm!r}); "
                f"this run supports: {what}"
            )

    # ----- what the server observed ------------------------------------------------------
    def observed_rounds(self) -> list[int]:
        folder = self.path / "observed"
        rounds = []
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and child.name.startswith("round_") and (child / "meta.json").is_file():
                    try:
                        rounds.append(int(child.name.removeprefix("round_")))
                    except ValueError:
                        continue
        return sorted(rounds)

    def _round_dir(self, r: int) -> Path:
        folder = self.path / "observed" / f"round_{r}"
        if not (folder / "meta.json").is_file():
            raise PrivfedError(
                f"round {r} was not observed in {self.path} (observed rounds: {self.observed_rounds() or 'none'}); "
                "rerun training with --observe including it"
            )
        return folder

    def round_meta(self, r: int) -> dict:
        return read_json(self._round_dir(r) / "meta.json")

    def client_meta(self, r: int, k: int) -> dict:
        for row in self.round_meta(r)["clients"]:
            if int(row["client"]) == k:
                return row
        raise PrivfedError(f"client {k} did not take part in round {r} of {self.path}")

    def round_clients(self, r: int) -> list[int]:
        return [int(row["client"]) for row in self.round_meta(r)["clients"]]

    def received(self, r: int, k: int) -> dict[str, torch.Tensor]:
        return load_tensors(self._round_dir(r) / f"client_{k}.safetensors")

    def before(self, r: int, k: int) -> dict[str, torch.Tensor]:
        """The weights client k started round r from, as far as the server knows them."""
        folder = self._round_dir(r)
        if self.algorithm == "partial":
            sent = folder / f"sent_client_{k}.safetensors"
            if sent.is_file():
                return load_tensors(sent)
            init = load_tensors(self.path / "init" / f"client_{k}.safetensors")
            return {name: init[name] for name in ("shared.weight", "shared.bias")}
        return load_tensors(folder / "global_before.safetensors")

    def update(self, r: int, k: int) -> dict[str, torch.Tensor]:
        """received - before: what the client's local training changed (floating tensors)."""
        after, before = self.received(r, k), self.before(r, k)
        return {name: after[name] - before[name] for name in after if after[name].is_floating_point() and name in before}

    # ----- models the attacker can build ------------------------------------------------
    def _build(self, arch: str, shared_width: int) -> SharedHeadModel:
        return build_model(arch, num_classes=self.num_classes, image_size=self.image_size,
                           shared_width=shared_width, dp=self.uses_dp_models)

    def _load(self, model: SharedHeadModel, state: dict[str, torch.Tensor], source: Path | str) -> SharedHeadModel:
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [m for m in missing if not m.startswith("shared.")]
        if missing or unexpected:
            raise PrivfedError(
                f"{source}: tensors do not fit architecture {model.arch!r} (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                "was the run directory written by another privfed version?"
            )
        return model

    def _with_shared(self, model: SharedHeadModel, shared: dict[str, torch.Tensor], client: int) -> SharedHeadModel:
        weight, bias = shared["shared.weight"], shared["shared.bias"]
        if weight.shape != model.shared.weight.shape:
            q = embedding_matrix(weight.shape[0], model.shared.weight.shape[0], int(self.config.get("seed", 0)))
            weight, bias = to_common(weight, bias, q)
        with torch.no_grad():
            model.shared.weight.copy_(weight)
            model.shared.bias.copy_(bias)
        return model

    def _server_model(self, before_round: int | None) -> SharedHeadModel:
        """The server's own model: after its training in the latest observed round < before_round."""
        arch = self.config.get("server_arch", "simple")
        model = self._build(arch, self.common_width)
        candidates = [r for r in self.observed_rounds() if before_round is None or r < before_round]
        for r in reversed(candidates):
            path = self.path / "observed" / f"round_{r}" / "server_model.safetensors"
            if path.is_file():
                return self._load(model, load_tensors(path), path)
        if before_round is None and (self.path / "models" / "server.safetensors").is_file():
            path = self.path / "models" / "server.safetensors"
            return self._load(model, load_tensors(path), path)
        path = self.path / "init" / "server.safetensors"
        return self._load(model, load_tensors(path), path)

    def attacker_model(self, r: int, k: int, knowledge: str, device: str | torch.device = "cpu") -> SharedHeadModel:
        """Client k's model at the START of round r, as the attacker best knows it."""
        check_knowledge(knowledge)
        arch, width = self.client_arch(k), self.client_shared_width(k)
        if knowledge == "full" and self.algorithm not in FULL_MODEL_ALGORITHMS:
            path = _oracle_file(self.path / "oracle" / f"round_{r}" / f"client_{k}.safetensors")
            model = self._load(self._build(arch, width), load_tensors(path), path)
        elif self.algorithm in FULL_MODEL_ALGORITHMS:
            # Every level is exact here: a sampled client starts the round from the global model it
            # was sent, so the engine writes no oracle/ copy of global_before.
            # Clients start each round from the global model the server sent: knowledge is exact.
            path = self.path / "observed" / f"round_{r}" / "global_before.safetensors"
            model = self._load(self._build(arch, width), self.before(r, k), path)
        elif knowledge == "init":
            path = self.path / "init" / f"client_{k}.safetensors"
            model = self._with_shared(self._load(self._build(arch, width), load_tensors(path), path), self.before(r, k), k)
        else:
            model = self._with_shared(self._server_model(before_round=r), self.before(r, k), k)
        return model.to(device).eval()

    def last_observed_round(self, k: int | None = None) -> int:
        rounds = [r for r in self.observed_rounds() if k is None or k in self.round_clients(r)]
        if not rounds:
            raise PrivfedError(f"{self.path} has no observed rounds{'' if k is None else f' for client {k}'}; train with --observe")
        return rounds[-1]

    def target_model(self, target: str, name: str, knowledge: str = "none", device: str | torch.device = "cpu") -> SharedHeadModel:
        """The model a membership attack queries.

        full-model: ``global`` (final global model) or ``client_<k>`` (client k's model as the
        server last received it). shared-layer: ``server`` or ``client_<k>``, whose last
        received ``shared`` layer is composed with a backbone chosen by ``knowledge``.
        """
        check_knowledge(knowledge)
        self.require_target(target)
        if name in ("global", "server"):
            stored = self.path / "models" / f"{name}.safetensors"
            if name == "server":
                return self._server_model(None).to(device).eval()
            model = self._build(self.client_arch(0), self.client_shared_width(0))
            return self._load(model, load_tensors(stored), stored).to(device).eval()
        if not name.startswith("client_"):
            raise PrivfedError(f"unknown model {name!r}; use global, server or client_<k>")
        k = int(name.removeprefix("client_"))
        if not 0 <= k < self.num_clients:
            raise PrivfedError(f"--client {k} out of range: {self.path} has clients 0..{self.num_clients - 1}")
        r = self.last_observed_round(k)
        received = self.received(r, k)
        arch, width = self.client_arch(k), self.client_shared_width(k)
        if target == "full-model":
            path = self.path / "observed" / f"round_{r}" / f"client_{k}.safetensors"
            return self._load(self._build(arch, width), received, path).to(device).eval()
        shared = {n: received[n] for n in ("shared.weight", "shared.bias")}
        if knowledge == "full":
            path = _oracle_file(self.path / "models" / f"client_{k}.safetensors")
            model = self._load(self._build(arch, width), load_tensors(path), path)
        elif knowledge == "init":
            path = self.path / "init" / f"client_{k}.safetensors"
            model = self._load(self._build(arch, width), load_tensors(path), path)
        elif self.algorithm in FULL_MODEL_ALGORITHMS:
            path = self.path / "models" / "global.safetensors"
            model = self._load(self._build(arch, width), load_tensors(path), path)
        else:
            model = self._server_model(None)
        return self._with_shared(model, shared, k).to(device).eval()

    # ----- data and privacy claims -----------------------------------------------------
    @cached_property
    def dataset(self):
        from privfed.data import open_dataset

        source = self.config.get("data") or "embedded"
        try:
            return open_dataset(source, self.image_size)
        except PrivfedError as exc:
            raise PrivfedError(f"{self.path / 'config.json'}: cannot open the run's data ({exc})") from None

    def images(self, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.load(list(ids))

    def client_ids(self, k: int) -> list[str]:
        return list(self.split.clients[k])

    def delta(self) -> float:
        dp = self.config.get("dp") or {}
        if dp.get("delta"):
            return float(dp["delta"])
        if self.summary and self.summary.get("delta"):
            return float(self.summary["delta"])
        n = min(len(c) for c in self.split.clients) or 1
        return min(1e-5, 1.0 / n)

    def epsilon_claimed(self, k: int | None = None) -> float | None:
        if self.dp_level == "none":
            return None
        rows = (self.summary or {}).get("clients") or (self.metrics[-1]["clients"] if self.metrics else [])
        values = [row.get("epsilon") for row in rows if k is None or int(row.get("id", -1)) == k]
        values = [float(v) for v in values if v is not None]
        if values:
            return max(values)
        eps = (self.summary or {}).get("epsilon")
        return float(eps) if eps is not None else None


def _oracle_file(path: Path) -> Path:
    """An oracle file, or an error that says what it is and what to use instead."""
    if not path.is_file():
        raise PrivfedError(
            f"--knowledge full needs {path} (the client's real private weights: the oracle upper bound), which is "
            "missing: Flower runs and shared copies of a run have no oracle files; use --knowledge none,init"
        )
    return path


def open_run(path: str | Path) -> RunView:
    path = Path(path)
    if not path.is_dir():
        raise PrivfedError(f"{path}: not a directory; pass a run directory written by 'privfed train'")
    config_path = path / "config.json"
    if not config_path.is_file() or not (path / "split.json").is_file():
        raise PrivfedError(f"{path}: not a privfed run directory (no config.json/split.json); pass the --out folder of 'privfed train'")
    config = read_json(config_path)
    if not isinstance(config, dict) or "algorithm" not in config:
        raise PrivfedError(f"{config_path}: not a privfed run configuration (no 'algorithm')")
    version = config.get("format_version", RUN_FORMAT_VERSION)
    if version != RUN_FORMAT_VERSION:
        raise PrivfedError(
            f"{config_path}: run format version {version} is not supported by this privfed (reads {RUN_FORMAT_VERSION}); "
            "use the privfed version that wrote it"
        )
    _check_tensor_files(path)
    return RunView(path=path, config=config)


#: folders of a run directory whose tensors an attack may read
TENSOR_FOLDERS = ("observed", "init", "oracle", "models")


def _check_tensor_files(path: Path) -> None:
    """Refuse the whole run before any attack starts if a tensor file is not plain safetensors.

    Run directories are shared between people; a pickle planted under a ``.safetensors``
    name must stop the attack at once, not be skipped as one failed method among others.
    Only headers are read (a few KB a file).
    """
    for folder in TENSOR_FOLDERS:
        if (path / folder).is_dir():
            for tensor_file in sorted((path / folder).rglob("*.safetensors")):
                safetensors_header(tensor_file)
