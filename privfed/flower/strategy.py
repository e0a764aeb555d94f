"""Every privfed algorithm as a Flower strategy: one adapter around the engine's strategies.

The engine's algorithms (:data:`privfed.federated.strategy.ALGORITHMS`: FedAvg, FedProx,
FedNova, partial aggregation with its rules G) already have Flower's shape
(``configure_train``/``aggregate_train`` on dicts of tensors), so one Flower
:class:`flwr.serverapp.strategy.Strategy` subclass serves them all; adding an algorithm to
the engine's registry makes it available here with no edit. The adapter adds what the
network needs: which SuperNode is client k, what each message carries, replies that fail
or never come (``min_clients``), and the run directory (:class:`RunRecorder`).

What goes over the wire per round:

- full-model algorithms: the global state dict down, each client's state dict up; the
  global model is evaluated on the server's test set.
- ``partial``: down, F_k^-1 of the current aggregate (client k's ``shared`` layer, the only
  tensors that ever leave a node); up, the client's ``shared`` after local training. The
  server maps them with F_k, combines them with G, trains its own model on its data from
  the aggregate, and sends F_k^-1 of the result with the next round's message; after the
  last round an ``evaluate`` message delivers it and collects the clients' test metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from privfed.errors import PrivfedError
from privfed.federated.client import train_local
from privfed.federated.config import TrainConfig
from privfed.federated.evaluation import TEST_FIELDS, evaluate
from privfed.federated.partial import PartialAggregation
from privfed.federated.seeding import generator, seeded, sample_clients
from privfed.federated.strategy import ALGORITHMS, ClientUpdate, FedAvg, LocalSettings
from privfed.flower import wire
from privfed.flower.recorder import RunRecorder
from privfed.models import build_model

INFO = 20


class PrivfedStrategy(Strategy):
    """A Flower strategy that runs the engine algorithm ``config.algorithm``."""

    def __init__(
        self,
        config: TrainConfig,
        nodes: Mapping[int, int],
        recorder: RunRecorder,
        server_data: tuple[torch.Tensor, torch.Tensor],
        test_data: tuple[torch.Tensor, torch.Tensor],
        device: torch.device | str = "cpu",
        min_clients: int | None = None,
    ) -> None:
        self.config = config
        self.algorithm: FedAvg = ALGORITHMS.get(config.algorithm).from_config(config)
        self.kind = self.algorithm.kind
        if self.kind not in ("full-model", "shared-layer"):
            raise PrivfedError(f"--algorithm {config.algorithm}: sends nothing, so it cannot run on Flower; use 'privfed train'")
        self.nodes = dict(nodes)
        self.recorder = recorder
        self.server_data = server_data
        self.test_data = test_data
        self.device = torch.device(device)
        self.min_clients = min_clients
        self.dp = config.dp.level != "none"
        self.server_model: torch.nn.Module | None = None
        self.global_state: dict[str, torch.Tensor] = {}
        self.last_updates: dict[int, ClientUpdate] = {}
        self._reset_round()

    # ---- set-up ------------------------------------------------------------------------
    def _build(self, arch: str, width: int) -> torch.nn.Module:
        return build_model(arch, self.config.num_classes, self.config.image_size, width, dp=self.dp)

    def initial_state(self) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
        """(what the strategy starts from, the init/ files): seeded exactly like the engine."""
        c = self.config
        init: dict[str, dict[str, torch.Tensor]] = {}
        if self.kind == "shared-layer":
            with seeded(c.seed, "init", "server"):
                self.server_model = self._build(c.server_arch, c.common_width).to(self.device)
            common = self.algorithm.payload(_cpu(self.server_model))
            for k in range(c.num_clients):
                with seeded(c.seed, "init", "client", k):
                    model = self._build(c.arch_of(k), c.width_of(k))
                state = _cpu(model)
                state.update(self.algorithm.from_common(common, c.width_of(k)))
                init[f"client_{k}"] = state
            init["server"] = _cpu(self.server_model)
            return common, init
        with seeded(c.seed, "init", "global"):
            model = self._build(c.arch_of(0), c.width_of(0))
        self.global_state = _cpu(model)
        for k in range(c.num_clients):
            init[f"client_{k}"] = self.global_state
        return dict(self.global_state), init

    def summary(self) -> None:
        log(INFO, "\t├──> privfed algorithm: %s (%s), %d clients", self.config.algorithm, self.kind, self.config.num_clients)
        log(INFO, "\t└──> run directory: %s", self.recorder.run.root)

    # ---- one round ---------------------------------------------------------------------
    def _reset_round(self) -> None:
        self._started = time.perf_counter()
        self._sampled: list[int] = []
        self._message_client: dict[int, int] = {}
        self._messages: list[Message] = []
        self._before: dict[str, torch.Tensor] = {}
        self._sent: dict[int, dict[str, torch.Tensor]] = {}
        self._settings: dict[int, LocalSettings] = {}
        self._down: dict[int, int] = {}
        self._updates: dict[int, ClientUpdate] = {}
        self._metrics: dict[int, dict[str, Any]] = {}
        self._failures: dict[int, str] = {}

    def sampled(self, server_round: int) -> list[int]:
        return sample_clients(self.config.seed, self.config.num_clients, self.config.clients_per_round, server_round)

    def _message(self, k: int, server_round: int, tensors: Mapping[str, torch.Tensor], message_type: str,
                 settings: LocalSettings | None = None) -> Message:
        content = RecordDict({wire.ARRAYS: wire.to_arrays(tensors),
                              wire.CONFIG: wire.config_record(self.config, k, server_round, settings)})
        message = Message(content=content, message_type=message_type, dst_node_id=self.nodes[k])
        self._messages.append(message)
        self._message_client[id(message)] = k
        return message

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self._reset_round()
        c = self.config
        self._before = wire.from_arrays(arrays)
        connected = set(grid.get_node_ids())
        self._sampled = self.sampled(server_round)
        messages = []
        for k in self._sampled:
            if self.nodes[k] not in connected:
                self._failures[k] = "its SuperNode is not connected"
                continue
            settings = self.algorithm.configure_train(server_round, c.local_settings(server_round, k))
            self._settings[k] = settings
            if self.kind == "shared-layer":
                payload = self.algorithm.from_common(self._before, c.width_of(k))
                self._sent[k] = payload
            else:
                payload = self._before
            self._down[k] = wire.tensor_bytes(payload)
            messages.append(self._message(k, server_round, payload, MessageType.TRAIN, settings))
        log(INFO, "configure_train: round %d, clients %s", server_round, [k for k in self._sampled if k in self._settings])
        return messages

    def _client_of(self, reply: Message) -> int | None:
        wanted = reply.metadata.reply_to_message_id
        for message in self._messages:
            if message.metadata.message_id == wanted:
                return self._message_client[id(message)]
        return None

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        for reply in replies:
            k = self._client_of(reply)
            if k is None:
                continue
            if reply.has_error():
                self._failures[k] = f"error {reply.error.code}: {reply.error.reason}"
                continue
            metrics = wire.read_metrics(reply.content.metric_records.get(wire.METRICS))
            self._metrics[k] = metrics
            self._updates[k] = ClientUpdate(
                k, wire.from_arrays(reply.content.array_records.get(wire.ARRAYS)), int(metrics.get("num-examples", 0)),
                int(metrics.get("local-steps", 0)), float(metrics.get("a-norm", 0.0)), float(metrics.get("train-loss", float("nan"))),
            )
        for k in self._sampled:
            if k not in self._updates and k not in self._failures:
                self._failures[k] = "no reply within round-timeout"
        required = self.min_clients or len(self._sampled)
        if len(self._updates) < required:
            missing = "; ".join(f"client {k}: {why}" for k, why in sorted(self._failures.items()))
            raise PrivfedError(
                f"round {server_round}: only {len(self._updates)} of {len(self._sampled)} sampled clients replied "
                f"({missing}) but the run needs {required} (run config min-clients); "
                f"rounds before {server_round} are kept in {self.recorder.run.root}. Restart the missing SuperNodes, "
                "or lower min-clients to continue without them"
            )
        updates = [self._updates[k] for k in sorted(self._updates)]
        new_state = self.algorithm.aggregate_train(server_round, self._before, updates)
        self.last_updates = dict(self._updates)
        if self.kind == "shared-layer":
            new_state = self._train_server(server_round, new_state)
        else:
            self.global_state = {k: v.detach().to("cpu") for k, v in new_state.items()}
        losses = [u.train_loss for u in updates if u.train_loss == u.train_loss]
        metrics = MetricRecord({"clients-replied": len(updates), **({"train-loss": sum(losses) / len(losses)} if losses else {})})
        return wire.to_arrays(new_state), metrics

    def _train_server(self, server_round: int, aggregate: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Partial aggregation: the server model starts from G(...) and trains on the server's data."""
        c = self.config
        state = self.server_model.state_dict()
        with torch.no_grad():
            for name, tensor in aggregate.items():
                state[name].copy_(tensor)
        images, labels = self.server_data
        if c.server_epochs > 0 and len(labels):
            settings = c.local_settings(server_round, None, c.server_epochs)
            train_local(self.server_model, images, labels, settings, generator(c.seed, "data", server_round, "server"),
                        self.device, where=f"server, round {server_round}")
        return self.algorithm.payload(_cpu(self.server_model))

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        """Only for ``partial`` after the last round: deliver F_k^-1(final aggregate), collect test metrics."""
        if self.kind != "shared-layer" or server_round != self.config.rounds:
            return []
        common = wire.from_arrays(arrays)
        connected = set(grid.get_node_ids())
        messages = []
        for k, node in sorted(self.nodes.items()):
            if node in connected:
                payload = self.algorithm.from_common(common, self.config.width_of(k))
                self._down[k] = self._down.get(k, 0) + wire.tensor_bytes(payload)
                messages.append(self._message(k, server_round, payload, MessageType.EVALUATE))
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replied = 0
        for reply in replies:
            k = self._client_of(reply)
            if k is None or reply.has_error():
                continue
            replied += 1
            metrics = wire.read_metrics(reply.content.metric_records.get(wire.METRICS))
            merged = dict(self._metrics.get(k, {}))
            merged.update({key: value for key, value in metrics.items() if key.startswith("test-")})
            self._metrics[k] = merged
        return MetricRecord({"clients-evaluated": replied}) if replied else None

    # ---- after each round: evaluate on the server's test set, write the run directory -----
    def evaluate_round(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Flower's ``evaluate_fn``: the last step of each round, so the round's files go here."""
        if server_round == 0:
            return None
        c = self.config
        if self.kind == "shared-layer":
            model, prefix = self.server_model, "server"
        else:
            model, prefix = self._build(c.arch_of(0), c.width_of(0)), "global"
            model.load_state_dict(self.global_state)
        images, labels = self.test_data
        if c.evaluates(server_round):
            evaluation = evaluate(model.to(self.device), images, labels, self.device, c.eval_batch_size).fields(f"{prefix}_")
        else:  # --eval-every skips this round
            evaluation = {f"{prefix}_test_{name}": None for name in TEST_FIELDS}
        accuracy = evaluation[f"{prefix}_test_accuracy"]
        rows = self.recorder.client_rows(server_round, self._updates, self._metrics, self._down)
        if server_round in c.observe:
            self.recorder.observe(
                server_round, self._updates, self._settings, rows, self._before,
                sent=self._sent if self.kind == "shared-layer" else None,
                server_state=_cpu(self.server_model) if self.kind == "shared-layer" else None,
            )
        if self._failures:
            evaluation["missing_clients"] = sorted(self._failures)
        self.recorder.round_row(server_round, rows, evaluation, time.perf_counter() - self._started)
        log(INFO, "privfed: round %d written (%s test accuracy %s)", server_round, prefix, accuracy)
        return MetricRecord({f"{prefix}-test-accuracy": accuracy}) if accuracy is not None else None

    def final_models(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.kind == "shared-layer":
            return {"server": _cpu(self.server_model)}
        models = {"global": self.global_state}
        if self.config.dp.level != "client":  # what a client sent last is then exactly its model
            for k, update in self.last_updates.items():
                models[f"client_{k}"] = update.tensors
        return models


def _cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu").clone() for name, t in model.state_dict().items()}


__all__ = ["PartialAggregation", "PrivfedStrategy"]
