"""The round loop: initialise, train clients, aggregate, send back, observe, checkpoint.

Writes exactly the run directory of docs/run-directory.md. Every random stream comes from
:mod:`privfed.federated.seeding` (seed, purpose, round, client) and every optimizer is
fresh each round, so ``--resume`` restores only model weights and DP accountants and ends
with the same metrics as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from privfed import RUN_FORMAT_VERSION, __version__
from privfed.devices import resolve_device
from privfed.errors import PrivfedError
from privfed.federated.client import client_round, planned_steps, train_local
from privfed.federated.config import TrainConfig, split_plan
from privfed.federated.evaluation import TEST_FIELDS, TestMetrics, evaluate, final_test_fields
from privfed.federated.partial import PartialAggregation
from privfed.federated.progress import TrainingDisplay
from privfed.federated.rundir import RunDir, cpu_state, payload_bytes
from privfed.federated.seeding import generator, seeded, sample_clients
from privfed.federated.strategy import ALGORITHMS, ClientUpdate, FedAvg, LocalSettings
from privfed.io import (
    append_jsonl, atomic_write_text, dumps_json, load_tensors, read_json, read_jsonl, remove_temp_files, tensor_metadata,
    write_json,
)
from privfed.models import build_model


@dataclasses.dataclass
class Party:
    """One party's data held in memory (uint8 when the images are exactly 8-bit)."""

    ids: list[str]
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)


def run_training(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    *,
    command: str | None = None,
    dataset: Any | None = None,
    split: Any | None = None,
    stop_after_round: int | None = None,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train and write the run directory ``out_dir``; returns the summary.

    ``resume=True`` reads ``out_dir/config.json`` (``config`` may then be None) and continues
    after the last checkpointed round. ``dataset``/``split`` replace ``privfed.data`` (tests,
    callers with data in memory). ``stop_after_round`` ends early without a summary, as a
    crash would (used to test resuming). ``on_round(r)`` is called after round r is
    checkpointed (benchmarks sample memory there).
    """
    started = time.perf_counter()
    run = RunDir(Path(out_dir))
    if resume:
        config, start_round, state = _resume_state(run)
    else:
        if config is None:
            raise PrivfedError("run_training: a TrainConfig is needed unless resume=True")
        if run.config.exists():
            raise PrivfedError(f"--out {run.root}: already holds a run; continue it with --resume {run.root} or choose another --out")
        config = config.resolved()
        start_round, state = 1, {}
    device = resolve_device(config.device)

    dataset = dataset if dataset is not None else _open_dataset(config)
    if resume and run.split.is_file():
        split = split if split is not None else _load_split(run.split)
    elif resume:  # killed between config.json and split.json: the split is a function of (data, config)
        split = split if split is not None else _make_split(dataset, config)
        _save_split(split, run.split)
    else:
        split = split if split is not None else _make_split(dataset, config)
        classes = list(getattr(dataset, "classes", None) or getattr(split, "classes", None) or [])
        plan = getattr(split, "plan", config.plan)
        config = dataclasses.replace(
            config,
            classes=classes or config.classes,
            num_classes=len(classes) if len(classes) >= 2 else config.num_classes,
            plan=dataclasses.asdict(plan) if dataclasses.is_dataclass(plan) else plan,
        )
        run.root.mkdir(parents=True, exist_ok=True)
        write_json(run.config, {"privfed_version": __version__, "format_version": RUN_FORMAT_VERSION,
                                "command": command or "privfed.federated.run_training", **config.to_dict()})
        _save_split(split, run.split)
    if len(split.clients) != config.num_clients:
        raise PrivfedError(f"{run.split}: has {len(split.clients)} clients but --num-clients is {config.num_clients}")

    engine = _Engine(config, run, device, dataset, split, progress)
    if state:
        engine.restore(state)
    else:  # a new run, or one killed before its first round was checkpointed: start at round 1
        engine.write_init()
    previous_elapsed = float(state.get("elapsed", 0.0))
    with engine.display(start_round):
        for server_round in range(start_round, config.rounds + 1):
            engine.play_round(server_round)
            engine.checkpoint(server_round, previous_elapsed + time.perf_counter() - started)
            if on_round is not None:
                on_round(server_round)
            if stop_after_round is not None and server_round >= stop_after_round and server_round < config.rounds:
                return {}
    return engine.finish(previous_elapsed + time.perf_counter() - started)




class _Engine:
    def __init__(self, config: TrainConfig, run: RunDir, device: torch.device, dataset: Any, split: Any, progress: bool) -> None:
        self.config = config
        self.run = run
        self.device = device
        self.progress = progress
        self.strategy: FedAvg = ALGORITHMS.get(config.algorithm).from_config(config)
        self.kind = self.strategy.kind
        self.dp = config.dp.level != "none"
        self.clients = [_load_party(dataset, list(ids)) for ids in split.clients]
        self.server = _load_party(dataset, list(split.server))
        self.test = _load_party(dataset, list(split.test))
        self._display: TrainingDisplay | None = None
        n = config.num_clients
        self.client_models: list[nn.Module] = []
        self.global_model: nn.Module | None = None
        self.server_model: nn.Module | None = None
        if self.kind == "shared-layer":
            for k in range(n):
                with seeded(config.seed, "init", "client", k):
                    self.client_models.append(self._build(config.arch_of(k), config.width_of(k)))
            with seeded(config.seed, "init", "server"):
                self.server_model = self._build(config.server_arch, config.common_width)
            common = self.strategy.payload(self.server_model.state_dict())
            for k, model in enumerate(self.client_models):
                _load(model, self.strategy.from_common(common, config.width_of(k)))
        else:
            with seeded(config.seed, "init", "global"):
                self.global_model = self._build(config.arch_of(0), config.width_of(0))
            if self.kind != "centralized":
                for k in range(n):
                    self.client_models.append(self._client_start(k))
        self.sample_privacy: list[Any] = []
        self.client_privacy: list[Any] = []
        self.central_privacy = None
        self._make_privacy()
        self.bytes_up = [0] * n
        self.bytes_down = [0] * n
        self.last_rows: list[dict[str, Any]] = []

    # ---- set-up ------------------------------------------------------------------------
    def _build(self, arch: str, width: int) -> nn.Module:
        model = build_model(arch, self.config.num_classes, self.config.image_size, width, dp=self.dp)
        return model.to(self.device)

    def _settings(self, server_round: int, k: int | None, epochs: int | None = None) -> LocalSettings:
        return self.config.local_settings(server_round, k, epochs)

    def _make_privacy(self) -> None:
        c = self.config
        if c.dp.level == "none":
            return
        from privfed.dp import ClientLevelPrivacy, SampleLevelPrivacy, poisson_steps_per_epoch

        if c.dp.level == "sample":
            parties = [self._union()] if self.kind == "centralized" else self.clients
            privacy = [
                SampleLevelPrivacy(c.dp, len(party), c.batch_size, c.epochs_of(k) * poisson_steps_per_epoch(len(party), c.batch_size), c.rounds)
                for k, party in enumerate(parties)
            ]
            if self.kind == "centralized":
                self.central_privacy = privacy[0]
            else:
                self.sample_privacy = privacy
        elif c.dp.level == "client":
            if self.kind in ("local", "centralized"):
                raise PrivfedError(f"--dp client: --algorithm {c.algorithm} sends no updates to privatise; use --dp sample")
            self.client_privacy = [ClientLevelPrivacy(c.dp, c.num_clients, c.clients_per_round, c.rounds) for _ in range(c.num_clients)]

    def _client_start(self, k: int) -> nn.Module:
        """Client k's first model: the global one, or (local training in a mixed federation) its own.

        Local training averages nothing, so a client whose architecture or width differs from
        client 0's starts from its own seeded initialisation (as partial's clients do) rather
        than silently training client 0's architecture.
        """
        config = self.config
        if (config.arch_of(k), config.width_of(k)) != (config.arch_of(0), config.width_of(0)):
            with seeded(config.seed, "init", "client", k):
                return self._build(config.arch_of(k), config.width_of(k))
        model = self._build(config.arch_of(0), config.width_of(0))
        model.load_state_dict(self.global_model.state_dict())
        return model

    def _union(self) -> Party:
        if not hasattr(self, "_union_party"):
            self._union_party = Party(
                [i for p in self.clients for i in p.ids],
                torch.cat([p.images for p in self.clients]) if self.clients else torch.empty(0),
                torch.cat([p.labels for p in self.clients]) if self.clients else torch.empty(0, dtype=torch.long),
            )
        return self._union_party

    def display(self, start_round: int) -> TrainingDisplay:
        self._display = TrainingDisplay(self.config.rounds, start_round, self.progress)
        return self._display

    def write_init(self) -> None:
        if self.kind == "centralized":
            self.run.save(self.run.init("global"), cpu_state(self.global_model))
            return
        for k, model in enumerate(self.client_models):
            self.run.save(self.run.init(f"client_{k}"), cpu_state(model))
        if self.server_model is not None:
            self.run.save(self.run.init("server"), cpu_state(self.server_model))

    # ---- one round ---------------------------------------------------------------------
    def sampled(self, server_round: int) -> list[int]:
        return sample_clients(self.config.seed, self.config.num_clients, self.config.clients_per_round, server_round)

    def play_round(self, server_round: int) -> None:
        begin = time.perf_counter()
        observed = server_round in self.config.observe
        handler = {"full-model": self._full_round, "shared-layer": self._partial_round,
                   "local": self._local_round, "centralized": self._central_round}[self.kind]
        row = handler(server_round, self.sampled(server_round), observed)
        row["bytes_up"] = sum(r["bytes_up"] for r in row["clients"])
        row["bytes_down"] = sum(r["bytes_down"] for r in row["clients"])
        row["seconds"] = time.perf_counter() - begin
        append_jsonl(self.run.metrics, {"round": server_round, "algorithm": self.config.algorithm, **row})
        if self._display:
            self._display.round_done()

    def _train_client(self, server_round: int, k: int, received: Mapping[str, torch.Tensor]) -> ClientUpdate:
        settings = self.strategy.configure_train(server_round, self._settings(server_round, k))
        self._party(server_round, f"client {k}", len(self.clients[k]), settings)
        return client_round(
            k, self.client_models[k], received, self.clients[k].images, self.clients[k].labels, settings,
            generator(self.config.seed, "data", server_round, k), self.strategy.payload, self.device,
            sample_privacy=self.sample_privacy[k] if self.sample_privacy else None,
            client_privacy=self.client_privacy[k] if self.client_privacy else None,
            noise_generator=generator(self.config.seed, "noise", server_round, k, device=self._noise_device()),
            on_batch=self._on_batch, server_round=server_round,
        )

    def _noise_device(self) -> torch.device:
        return torch.device("cpu")

    def _party(self, server_round: int, name: str, n: int, settings: LocalSettings) -> None:
        if self._display:
            self._display.party(server_round, name, planned_steps(n, settings))

    def _on_batch(self, done: int, total: int, loss: float) -> None:
        if self._display:
            self._display.batch(done, total, loss)

    def _full_round(self, server_round: int, sampled: list[int], observed: bool) -> dict[str, Any]:
        global_state = cpu_state(self.global_model)
        down = payload_bytes(global_state)
        updates = {}
        for k in sampled:  # no oracle/ file: a sampled client starts exactly from global_before
            updates[k] = self._train_client(server_round, k, global_state)
        new_state = self.strategy.aggregate_train(server_round, global_state, list(updates.values()))
        _load(self.global_model, new_state)
        rows = self._client_rows(server_round, updates, {k: down for k in sampled})
        if observed:
            self._observe(server_round, updates, rows, global_state)
        return {"clients": rows, **self._tested(server_round, self.global_model, "global_")}

    def _partial_round(self, server_round: int, sampled: list[int], observed: bool) -> dict[str, Any]:
        strategy: PartialAggregation = self.strategy  # type: ignore[assignment]
        common_before = strategy.payload(cpu_state(self.server_model))
        updates, sent = {}, {}
        for k in sampled:
            sent[k] = strategy.from_common(common_before, self.config.width_of(k))
            if observed:
                self.run.save(self.run.oracle(server_round) / f"client_{k}.safetensors", cpu_state(self.client_models[k]))
            updates[k] = self._train_client(server_round, k, sent[k])
        aggregate = strategy.aggregate_train(server_round, common_before, list(updates.values()))
        _load(self.server_model, aggregate)
        if self.config.server_epochs > 0 and len(self.server):
            settings = self._settings(server_round, None, self.config.server_epochs)
            self._party(server_round, "server", len(self.server), settings)
            train_local(self.server_model, self.server.images, self.server.labels, settings,
                        generator(self.config.seed, "data", server_round, "server"), self.device,
                        on_batch=self._on_batch, where=f"server, round {server_round}")
        common_after = strategy.payload(cpu_state(self.server_model))
        down = {}
        for k, model in enumerate(self.client_models):  # every client receives the new layer
            returned = strategy.from_common(common_after, self.config.width_of(k))
            _load(model, returned)
            down[k] = payload_bytes(returned)
        rows = self._client_rows(server_round, updates, down)
        if observed:
            self._observe(server_round, updates, rows, common_before, sent)
        return {"clients": rows, **self._tested(server_round, self.server_model, "server_")}

    def _local_round(self, server_round: int, sampled: list[int], observed: bool) -> dict[str, Any]:
        updates = {}
        for k in sampled:
            settings = self._settings(server_round, k)
            self._party(server_round, f"client {k}", len(self.clients[k]), settings)
            stats = train_local(
                self.client_models[k], self.clients[k].images, self.clients[k].labels, settings,
                generator(self.config.seed, "data", server_round, k), self.device,
                sample_privacy=self.sample_privacy[k] if self.sample_privacy else None,
                on_batch=self._on_batch, where=f"client {k}, round {server_round}",
            )
            updates[k] = ClientUpdate(k, {}, stats.num_samples, stats.local_steps, stats.a_norm, stats.train_loss)
        rows = self._client_rows(server_round, updates, {})
        return {"clients": rows, **{f"global_test_{name}": None for name in TEST_FIELDS}}

    def _central_round(self, server_round: int, sampled: list[int], observed: bool) -> dict[str, Any]:
        union = self._union()
        settings = self._settings(server_round, 0)
        self._party(server_round, "centralized", len(union), settings)
        train_local(self.global_model, union.images, union.labels, settings,
                    generator(self.config.seed, "data", server_round, "central"), self.device,
                    sample_privacy=self.central_privacy, on_batch=self._on_batch, where=f"centralized model, round {server_round}")
        return {"clients": [], **self._tested(server_round, self.global_model, "global_")}

    # ---- metrics and observation -------------------------------------------------------
    def _evaluate(self, model: nn.Module) -> TestMetrics:
        return evaluate(model, self.test.images, self.test.labels, self.device, self.config.eval_batch_size)

    def _tested(self, server_round: int, model: nn.Module, prefix: str = "") -> dict[str, float | None]:
        """Test fields of ``model``, or nulls in a round ``--eval-every`` skips."""
        if not self.config.evaluates(server_round):
            return {f"{prefix}test_{name}": None for name in TEST_FIELDS}
        return self._evaluate(model).fields(prefix)

    def _epsilon(self, k: int) -> float | None:
        privacy = (self.sample_privacy or self.client_privacy or [None] * (k + 1))[k]
        return float(privacy.epsilon()) if privacy is not None else None

    def _client_rows(self, server_round: int, updates: dict[int, ClientUpdate], down: dict[int, int]) -> list[dict[str, Any]]:
        rows = []
        for k, model in enumerate(self.client_models):
            update = updates.get(k)
            up = payload_bytes(update.tensors) if update is not None else 0
            self.bytes_up[k] += up
            self.bytes_down[k] += down.get(k, 0)
            tested = self._tested(server_round, model)
            rows.append({
                "id": k, "arch": self.config.arch_of(k), "sampled": update is not None,
                "train_loss": _finite(update.train_loss) if update is not None else None,
                **tested, "bytes_up": up, "bytes_down": down.get(k, 0),
                "epsilon": self._epsilon(k),
                "num_samples": len(self.clients[k]), "local_steps": update.local_steps if update is not None else 0,
            })
        self.last_rows = rows
        return rows

    def _observe(self, server_round, updates, rows, global_before, sent=None) -> None:
        folder = self.run.observed(server_round)
        c = self.config
        entries = []
        for k, update in updates.items():
            self.run.save(folder / f"client_{k}.safetensors", update.tensors)
            if sent is not None:
                self.run.save(folder / f"sent_client_{k}.safetensors", sent[k])
            settings = self.strategy.configure_train(server_round, self._settings(server_round, k))
            entries.append({
                "client": k, "arch": c.arch_of(k), "num_samples": update.num_samples, "local_epochs": c.epochs_of(k),
                "local_steps": update.local_steps, "batch_size": c.batch_size, "lr": settings.lr,
                "optimizer": settings.optimizer, "momentum": settings.momentum, "mu": settings.mu,
                "balance_classes": settings.balance_classes, "shared_width": c.width_of(k),
                "file": f"client_{k}.safetensors", "bytes_up": rows[k]["bytes_up"], "bytes_down": rows[k]["bytes_down"],
            })
        self.run.save(folder / "global_before.safetensors", global_before)
        meta = {"round": server_round, "algorithm": c.algorithm, "kind": self.kind, "clients": entries,
                "dp": dataclasses.asdict(c.dp), "seed": c.seed}
        if self.kind == "shared-layer":
            self.run.save(folder / "server_model.safetensors", cpu_state(self.server_model))
            meta.update({"common_width": c.common_width, "server_arch": c.server_arch, "aggregation": c.aggregation,
                         "server_epochs": c.server_epochs})
        write_json(folder / "meta.json", meta)

    # ---- checkpoint / resume -----------------------------------------------------------
    def _models(self) -> dict[str, nn.Module]:
        models = {f"client_{k}": m for k, m in enumerate(self.client_models)}
        if self.global_model is not None:
            models["global"] = self.global_model
        if self.server_model is not None:
            models["server"] = self.server_model
        return models

    def checkpoint(self, server_round: int, elapsed: float) -> None:
        """Save every party's weights, then commit them by writing checkpoints/state.json.

        The weights go to ``checkpoints/pending/`` first, tagged with their round, and are
        moved over ``checkpoints/<party>.safetensors`` only after state.json names that round:
        a kill at any moment leaves either the previous round's complete checkpoint or this
        one's (rolled forward by :meth:`restore`), never a mix of rounds.
        """
        tag = {"round": str(server_round)}
        models = self._models()
        for name, model in models.items():
            self.run.save(self.run.pending_checkpoint(name), cpu_state(model), tag)
        privacy = {}
        for label, objects in (("sample", self.sample_privacy), ("client", self.client_privacy)):
            for k, p in enumerate(objects):
                privacy[f"{label}_{k}"] = p.state_dict()
        if self.central_privacy is not None:
            privacy["central"] = self.central_privacy.state_dict()
        write_json(self.run.checkpoint_state, {
            "format_version": RUN_FORMAT_VERSION, "round": server_round, "elapsed": elapsed,
            "bytes_up": self.bytes_up, "bytes_down": self.bytes_down, "privacy": privacy,
            "last_rows": self.last_rows,
        })
        for name in models:  # committed: move into place (a kill here is finished by restore)
            os.replace(self.run.pending_checkpoint(name), self.run.checkpoint(name))

    def restore(self, state: dict[str, Any]) -> None:
        done = str(state["round"])
        for name, model in self._models().items():
            pending, path = self.run.pending_checkpoint(name), self.run.checkpoint(name)
            if pending.is_file() and tensor_metadata(pending).get("round") == done:
                os.replace(pending, path)  # state.json was written, the move was not: finish it
            if not path.is_file():
                raise PrivfedError(f"--resume {self.run.root}: {path} is missing; the run cannot continue, start it again")
            tagged = tensor_metadata(path).get("round")
            if tagged is not None and tagged != done:
                raise PrivfedError(
                    f"--resume {self.run.root}: {path} holds round {tagged} but checkpoints/state.json says round {done}; "
                    "the checkpoint was altered, start the run again"
                )
            _load(model, load_tensors(path), path)
        try:
            privacy = state.get("privacy", {})
            for label, objects in (("sample", self.sample_privacy), ("client", self.client_privacy)):
                for k, p in enumerate(objects):
                    p.load_state_dict(privacy[f"{label}_{k}"])
            if self.central_privacy is not None:
                self.central_privacy.load_state_dict(privacy["central"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PrivfedError(
                f"{self.run.checkpoint_state}: the DP accountant state is missing or damaged ({exc!r}); start the run again"
            ) from None
        self.bytes_up = [int(v) for v in state["bytes_up"]]
        self.bytes_down = [int(v) for v in state["bytes_down"]]
        self.last_rows = state.get("last_rows", [])

    # ---- the end -----------------------------------------------------------------------
    def finish(self, elapsed: float) -> dict[str, Any]:
        c = self.config
        if self.global_model is not None:
            self.run.save(self.run.model("global"), cpu_state(self.global_model))
        if self.server_model is not None:
            self.run.save(self.run.model("server"), cpu_state(self.server_model))
        for k, model in enumerate(self.client_models):
            self.run.save(self.run.model(f"client_{k}"), cpu_state(model))
        rows = read_jsonl(self.run.metrics)
        last = rows[-1] if rows else {}
        clients = [dict(r, bytes_up_total=self.bytes_up[r["id"]], bytes_down_total=self.bytes_down[r["id"]])
                   for r in last.get("clients", [])]
        up = sum(r["bytes_up"] for r in rows)
        down = sum(r["bytes_down"] for r in rows)
        summary: dict[str, Any] = {"algorithm": c.algorithm, "rounds": c.rounds, "final_round": last.get("round", 0),
                                   "clients": clients}
        summary.update(final_test_fields(last, clients, central=self.kind == "centralized"))
        epsilons = [r["epsilon"] for r in clients if r.get("epsilon") is not None]
        if self.central_privacy is not None:
            epsilons.append(float(self.central_privacy.epsilon()))
        privacy = (self.sample_privacy or self.client_privacy or [self.central_privacy])[0]
        summary.update({
            "bytes_up_total": up, "bytes_down_total": down, "bytes_per_round": (up + down) / len(rows) if rows else 0,
            "wall_seconds": elapsed, "dp_level": c.dp.level,
            "dp_neighbouring": c.dp.relation if c.dp.level != "none" else None,
            "epsilon": max(epsilons) if epsilons else None,
            "delta": _attr(privacy, "delta", c.dp.delta),
            "noise_multiplier": _attr(privacy, "noise_multiplier", c.dp.noise_multiplier),
            "max_grad_norm": c.dp.max_grad_norm if c.dp.level != "none" else None,
            "privfed_version": __version__, "format_version": RUN_FORMAT_VERSION,
        })
        if c.dp.level == "none":
            summary["delta"] = summary["noise_multiplier"] = None
        write_json(self.run.summary, summary)
        return summary


# ---- helpers ----------------------------------------------------------------------------
def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _attr(obj: Any, name: str, default: Any) -> Any:
    value = getattr(obj, name, None) if obj is not None else None
    return float(value) if value is not None else default


def _load(model: nn.Module, tensors: Mapping[str, torch.Tensor], source: Path | str | None = None) -> None:
    state = model.state_dict()
    if source is not None:  # a file: check it fits before touching the model
        unknown = sorted(set(tensors) - set(state))
        missing = sorted(set(state) - set(tensors))
        wrong = [n for n in tensors if n in state and tuple(tensors[n].shape) != tuple(state[n].shape)]
        if unknown or missing or wrong:
            raise PrivfedError(
                f"{source}: does not fit the run's model (unknown {unknown[:3]}, missing {missing[:3]}, "
                f"wrong shape {wrong[:3]}); the file was altered or comes from another run, start the run again"
            )
    with torch.no_grad():
        for name, tensor in tensors.items():
            state[name].copy_(tensor)


def _resume_state(run: RunDir) -> tuple[TrainConfig, int, dict[str, Any]]:
    """(config, first round to play, checkpoint state) of a run to continue.

    A run killed before its first checkpoint restarts at round 1 from its saved config (the
    same seed gives the same rounds); one killed before config.json existed has nothing to
    continue and must be started again.
    """
    if not run.config.is_file():
        raise PrivfedError(
            f"--resume {run.root}: no config.json there, so there is nothing to continue (not a privfed run directory, "
            "or the run was stopped before it started); start it again with the same options and --out"
        )
    stored = read_json(run.config)
    if not isinstance(stored, dict):
        raise PrivfedError(f"{run.config}: not a privfed run configuration (expected a JSON object)")
    version = stored.get("format_version")
    if version != RUN_FORMAT_VERSION:
        raise PrivfedError(
            f"--resume {run.root}: run format version {version!r} is not the one this privfed writes ({RUN_FORMAT_VERSION}); "
            f"continue it with the privfed version that started it (privfed {stored.get('privfed_version', '?')}), "
            "or start it again"
        )
    config = TrainConfig.from_dict(stored, source=str(run.config))
    remove_temp_files(run.root)
    state: dict[str, Any] = {}
    if run.checkpoint_state.is_file():
        state = read_json(run.checkpoint_state)
        if not isinstance(state, dict) or not isinstance(state.get("round"), int) or state.get("format_version") != RUN_FORMAT_VERSION:
            raise PrivfedError(f"{run.checkpoint_state}: not a privfed checkpoint of format {RUN_FORMAT_VERSION}; start the run again")
        for key in ("bytes_up", "bytes_down"):
            if not isinstance(state.get(key), list) or len(state[key]) != config.num_clients:
                raise PrivfedError(f"{run.checkpoint_state}: {key!r} does not match the run's {config.num_clients} clients; start the run again")
    done = int(state.get("round", 0))
    if not 0 <= done <= config.rounds:
        raise PrivfedError(f"{run.checkpoint_state}: round {done} is outside 1..{config.rounds}; start the run again")
    if run.summary.is_file() and done >= config.rounds:
        raise PrivfedError(f"--resume {run.root}: the run already finished all {config.rounds} rounds")
    pending = run.checkpoints / "pending"
    if pending.is_dir():  # weights of a round that was never committed (killed before state.json) are dropped
        for path in pending.glob("*.safetensors"):
            if tensor_metadata(path).get("round") != str(done):
                path.unlink()
    rows = read_jsonl(run.metrics) if run.metrics.is_file() else []
    rows = [r for r in rows if isinstance(r, dict) and isinstance(r.get("round"), int) and r["round"] <= done]
    atomic_write_text(run.metrics, "".join(dumps_json(r, indent=None) + "\n" for r in rows))
    return config, done + 1, state


def _open_dataset(config: TrainConfig) -> Any:
    try:
        from privfed.data import open_dataset
    except ImportError:
        raise PrivfedError("privfed.data.open_dataset is not available in this installation") from None
    return open_dataset(config.data, config.image_size)


def _make_split(dataset: Any, config: TrainConfig) -> Any:
    from privfed.data.split import make_split

    return make_split(dataset, config.num_clients, split_plan(config.plan), config.seed)


def _save_split(split: Any, path: Path) -> None:
    try:
        from privfed.data.split import save_split
    except ImportError:
        save_split = None
    if save_split is not None and not isinstance(split, _PlainSplit):
        try:
            save_split(split, path)
            return
        except (AttributeError, TypeError):
            pass
    plan = getattr(split, "plan", None)
    write_json(path, {"format_version": 1, "seed": getattr(split, "seed", None),
                      "plan": dataclasses.asdict(plan) if dataclasses.is_dataclass(plan) else plan,
                      "classes": list(getattr(split, "classes", [])),
                      "clients": [list(c) for c in split.clients], "server": list(split.server), "test": list(split.test)})


@dataclasses.dataclass
class _PlainSplit:
    clients: list[list[str]]
    server: list[str]
    test: list[str]
    seed: int | None = None
    plan: Any = None
    classes: list[str] = dataclasses.field(default_factory=list)


def _load_split(path: Path) -> Any:
    try:
        from privfed.data.split import load_split

        return load_split(path)
    except ImportError:
        data = read_json(path)
        return _PlainSplit(data["clients"], data["server"], data["test"], data.get("seed"), data.get("plan"), data.get("classes", []))


def _load_party(dataset: Any, ids: list[str], chunk: int = 512) -> Party:
    """Load a party's images, kept as uint8 when they are exactly k/255 (4x less memory)."""
    if not ids:
        size = getattr(dataset, "image_size", 0)
        return Party([], torch.empty(0, 3, size, size), torch.empty(0, dtype=torch.long))
    images, labels, exact = [], [], True
    for start in range(0, len(ids), chunk):
        x, y = dataset.load(ids[start : start + chunk])
        x = torch.as_tensor(x, dtype=torch.float32)
        q = torch.round(x * 255)
        if exact and torch.equal(q / 255, x) and bool(((q >= 0) & (q <= 255)).all()):
            x = q.to(torch.uint8)
        elif exact:  # not 8-bit after all: keep floats for everything
            exact = False
            images = [i.float().div(255) for i in images]
        images.append(x)
        labels.append(torch.as_tensor(y, dtype=torch.long))
    return Party(list(ids), torch.cat(images), torch.cat(labels))
