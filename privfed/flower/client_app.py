"""privfed's Flower ClientApp: one hospital's side of every privfed algorithm.

Flower starts this app for each message a SuperNode receives (``flwr-clientapp``), so
nothing survives in memory between rounds: the client's private model (backbone, ``fc``,
classifier; for ``partial`` none of it ever leaves the node) and its DP accountant live in
Flower's per-run ``context.state``, on the SuperNode's machine. Local training is the
engine's :func:`~privfed.federated.client.client_round` with the engine's seeds (seed,
"data", round, client), so a Flower run of client k trains exactly like client k of
``privfed train`` on the same data.

Messages (see :mod:`privfed.flower.wire`):

- ``query.describe``: reply with the node's partition id and training sample ids (for
  ``split.json``; ids are relative file names for an image folder, never images).
- ``train``: load what the server sent, train locally, reply with the algorithm's payload
  (the whole state dict, or only ``shared.weight``/``shared.bias`` for ``partial``) and
  the training statistics FedNova and the run directory need.
- ``evaluate`` (``partial``): load F_k^-1 of the new aggregate into ``shared``, keep it,
  reply with test metrics of the client's model.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from privfed.federated.client import client_round, planned_steps
from privfed.federated.config import TrainConfig
from privfed.devices import resolve_device
from privfed.federated.evaluation import evaluate
from privfed.federated.seeding import generator, seeded
from privfed.federated.strategy import ALGORITHMS, LocalSettings
from privfed.flower import wire
from privfed.flower.local_data import LocalData, load_local_data
from privfed.flower.options import NodeOptions
from privfed.models import build_model

app = ClientApp()

#: context.state keys
MODEL_STATE = "privfed-model"
PRIVACY_STATE = "privfed-privacy"


@app.query(wire.DESCRIBE)
def describe(msg: Message, context: Context) -> Message:
    config, _, _, _ = wire.read_config_record(msg.content[wire.CONFIG])
    node = NodeOptions.from_node_config(context.node_config)
    data = load_local_data(node, config, need_images=False)
    reply = ConfigRecord({
        "partition-id": node.partition_id if node.partition_id is not None else -1,
        "ids": data.ids,
        "classes": data.classes,
        "num-samples": len(data.ids),
        "data": data.description,
    })
    return Message(RecordDict({wire.CONFIG: reply}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    config, k, server_round, settings = wire.read_config_record(msg.content[wire.CONFIG])
    node = NodeOptions.from_node_config(context.node_config)
    device = resolve_device(node.device)
    data = load_local_data(node, config)
    strategy = ALGORITHMS.get(config.algorithm).from_config(config)
    model = _client_model(context, config, k, device)
    received = wire.from_arrays(msg.content.array_records.get(wire.ARRAYS))
    settings = settings or LocalSettings()
    sample_privacy, client_privacy = _privacy(context, config, k, len(data), settings)
    update = client_round(
        k, model, received, data.images, data.labels, settings,
        generator(config.seed, "data", server_round, k), strategy.payload, device,
        sample_privacy=sample_privacy, client_privacy=client_privacy,
        noise_generator=generator(config.seed, "noise", server_round, k), server_round=server_round,
    )
    _save_model(context, model)
    epsilon = _save_privacy(context, sample_privacy or client_privacy)
    # Under DP only data-independent figures travel beside the noised update: the training loss
    # and test metrics are computed from private images without noise, so they stay on the node.
    metrics: dict[str, Any] = {
        "num-examples": update.num_samples, "local-steps": update.local_steps, "a-norm": float(update.a_norm),
        "epsilon": epsilon,
    }
    if config.dp.level == "none":
        metrics["train-loss"] = update.train_loss
        if strategy.kind == "full-model" and config.evaluates(server_round):
            metrics.update(_test_metrics(model, data, config, device))
    content = RecordDict({wire.ARRAYS: wire.to_arrays(update.tensors), wire.METRICS: wire.metric_record(metrics)})
    return Message(content, reply_to=msg)


@app.evaluate()
def receive_and_evaluate(msg: Message, context: Context) -> Message:
    """Partial aggregation's send-back: keep F_k^-1(aggregate) in ``shared``, report test metrics."""
    config, k, server_round, _ = wire.read_config_record(msg.content[wire.CONFIG])
    node = NodeOptions.from_node_config(context.node_config)
    device = resolve_device(node.device)
    model = _client_model(context, config, k, device)
    received = wire.from_arrays(msg.content.array_records.get(wire.ARRAYS))
    if received:
        state = model.state_dict()
        with torch.no_grad():
            for name, tensor in received.items():
                state[name].copy_(tensor)
        _save_model(context, model)
    data = load_local_data(node, config)
    metrics = {"num-examples": len(data)}
    if config.dp.level == "none" and config.evaluates(server_round):  # under DP they stay on the node (see train)
        metrics.update(_test_metrics(model, data, config, device))
    return Message(RecordDict({wire.METRICS: wire.metric_record(metrics)}), reply_to=msg)


# ---- helpers ----------------------------------------------------------------------------
def _client_model(context: Context, config: TrainConfig, k: int, device: torch.device) -> torch.nn.Module:
    """The node's model: from context.state after round 1, else seeded like the engine's client k."""
    dp = config.dp.level != "none"
    with seeded(config.seed, "init", "client", k):
        model = build_model(config.arch_of(k), config.num_classes, config.image_size, config.width_of(k), dp=dp)
    stored = context.state.array_records.get(MODEL_STATE)
    if stored is not None:
        model.load_state_dict(wire.from_arrays(stored))
    return model.to(device)


def _save_model(context: Context, model: torch.nn.Module) -> None:
    state = {name: t.detach().to("cpu") for name, t in model.state_dict().items()}
    context.state[MODEL_STATE] = ArrayRecord({name: wire._array(t) for name, t in state.items()})


def _privacy(context: Context, config: TrainConfig, k: int, n: int, settings: LocalSettings) -> tuple[Any, Any]:
    """The engine's DP objects for this client, restored from context.state (accountants persist)."""
    if config.dp.level == "none":
        return None, None
    from privfed.dp import ClientLevelPrivacy, SampleLevelPrivacy

    if config.dp.level == "sample":
        privacy = SampleLevelPrivacy(config.dp, n, config.batch_size, planned_steps(n, settings), config.rounds)
        result = (privacy, None)
    else:
        privacy = ClientLevelPrivacy(config.dp, config.num_clients, config.clients_per_round, config.rounds)
        result = (None, privacy)
    stored = context.state.config_records.get(PRIVACY_STATE)
    if stored is not None:
        privacy.load_state_dict(json.loads(str(stored["state"])))
    return result


def _save_privacy(context: Context, privacy: Any) -> float | None:
    if privacy is None:
        return None
    context.state[PRIVACY_STATE] = ConfigRecord({"state": json.dumps(privacy.state_dict())})
    epsilon = float(privacy.epsilon())
    return epsilon if math.isfinite(epsilon) else None


def _test_metrics(model: torch.nn.Module, data: LocalData, config: TrainConfig, device: torch.device) -> dict[str, float]:
    if data.test_images is None or data.test_labels is None or len(data.test_labels) == 0:
        return {}
    tested = evaluate(model, data.test_images, data.test_labels, device, config.eval_batch_size)
    return {key.replace("_", "-"): value for key, value in tested.fields().items()}
