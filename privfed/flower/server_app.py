"""privfed's Flower ServerApp: wait for the clients, learn who holds what, run the strategy.

Runs where the SuperLink runs (started by ``flwr run``). Steps:

1. Read the run config (:func:`~privfed.flower.options.config_from_run_config`); it resolves
   like ``privfed train``'s options.
2. Wait (``connect-timeout``) until ``num-clients`` SuperNodes are connected, and ask each
   (``query.describe``) for its ``partition-id`` and its training sample ids. Client k is the
   node with ``partition-id`` k; nodes without one are numbered in node-id order.
3. Deal the server's own data (``data``, default the embedded set) with the run's plan and
   seed: its server and test shares are the server's training and test data. Write
   ``config.json`` and ``split.json`` (clients' ids as the clients reported them).
4. Run :class:`~privfed.flower.strategy.PrivfedStrategy` with Flower's
   ``Strategy.start`` loop, which writes one ``metrics.jsonl`` line per round, then
   ``models/`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import time

import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from privfed.errors import PrivfedError
from privfed.federated.config import TrainConfig
from privfed.devices import resolve_device
from privfed.flower import wire
from privfed.flower.local_data import split_plan
from privfed.flower.options import FlowerOptions, config_from_run_config
from privfed.flower.recorder import RunRecorder
from privfed.flower.strategy import PrivfedStrategy

INFO, ERROR = 20, 40

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    try:
        config, options = config_from_run_config(context.run_config)
        run_server(grid, config, options)
    except PrivfedError as exc:
        log(ERROR, "error: %s", exc)
        raise


def wait_for_nodes(grid: Grid, count: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= count:
            return nodes
        if time.monotonic() > deadline:
            raise PrivfedError(
                f"only {len(nodes)} of num-clients={count} SuperNodes connected within connect-timeout={timeout:g}s; "
                "start more with 'privfed flower supernode', or lower num-clients"
            )
        time.sleep(0.5)


def describe_nodes(grid: Grid, config: TrainConfig, nodes: list[int], timeout: float) -> dict[int, dict]:
    """node id -> {"partition-id", "ids", "classes", "num-samples", "data"} as the node reported it."""
    messages = [
        Message(RecordDict({wire.CONFIG: wire.config_record(config, -1, 0)}), dst_node_id=node,
                message_type=f"query.{wire.DESCRIBE}")
        for node in nodes
    ]
    by_id = {}
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    sent = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}
    for reply in replies:
        node = sent.get(reply.metadata.reply_to_message_id)
        if node is None:
            continue
        if reply.has_error():
            raise PrivfedError(f"SuperNode {node} could not describe its data: {reply.error.reason}")
        record: ConfigRecord = reply.content[wire.CONFIG]
        by_id[node] = {key: record[key] for key in record}
    missing = [n for n in nodes if n not in by_id]
    if missing:
        raise PrivfedError(f"SuperNodes {missing} did not answer within round-timeout; check their logs")
    return by_id


def assign_clients(descriptions: dict[int, dict], num_clients: int) -> dict[int, int]:
    """client index -> node id: ``partition-id`` when every node gives a distinct one, else node-id order."""
    parts = {node: int(d.get("partition-id", -1)) for node, d in descriptions.items()}
    chosen = {p: node for node, p in parts.items() if 0 <= p < num_clients}
    if len(chosen) == num_clients:
        return dict(sorted(chosen.items()))
    if any(p >= 0 for p in parts.values()) and len(set(parts.values())) < len(parts):
        raise PrivfedError(f"two SuperNodes report the same partition-id ({sorted(parts.values())}); give each its own")
    return {k: node for k, node in enumerate(sorted(descriptions)[:num_clients])}


def run_server(grid: Grid, config: TrainConfig, options: FlowerOptions) -> dict:
    from privfed.data import Split, make_split, open_dataset

    started = time.perf_counter()
    device = resolve_device(config.device)
    nodes = wait_for_nodes(grid, config.num_clients, options.connect_timeout)
    descriptions = describe_nodes(grid, config, nodes, options.round_timeout)
    assignment = assign_clients(descriptions, config.num_clients)

    dataset = open_dataset(config.data, config.image_size)
    classes = list(dataset.classes)
    for k, node in assignment.items():
        reported = list(descriptions[node].get("classes") or [])
        if reported and reported != classes:
            raise PrivfedError(
                f"client {k} (SuperNode {node}) has classes {reported} but the server's data has {classes}; "
                "every party needs the same class subfolders"
            )
    plan = split_plan(config)
    base = make_split(dataset, config.num_clients, plan, config.seed)
    split = Split(clients=[list(descriptions[assignment[k]]["ids"]) for k in range(config.num_clients)],
                  server=base.server, test=base.test, seed=config.seed, plan=plan, classes=classes)
    config = dataclasses.replace(config, classes=classes, num_classes=max(len(classes), 2), plan=plan.to_dict())
    strategy_kind = "shared-layer" if config.algorithm == "partial" else "full-model"
    recorder = RunRecorder(config, options.out_dir, strategy_kind)
    recorder.start(split, options.command)

    server_data = _load(dataset, split.server)
    test_data = _load(dataset, split.test)
    strategy = PrivfedStrategy(config, assignment, recorder, server_data, test_data, device, options.min_clients)
    recorder.kind = strategy.kind
    initial, init_files = strategy.initial_state()
    for name, state in init_files.items():
        recorder.save(recorder.run.init(name), state)
    log(INFO, "privfed: clients %s", {k: descriptions[n].get("data") for k, n in assignment.items()})
    strategy.start(grid, wire.to_arrays(initial), num_rounds=config.rounds, timeout=options.round_timeout,
                   evaluate_fn=strategy.evaluate_round)
    summary = recorder.finish(time.perf_counter() - started, strategy.final_models())
    log(INFO, "privfed: run directory complete: %s", options.out_dir)
    return summary


def _load(dataset, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    if not ids:
        size = dataset.image_size if hasattr(dataset, "image_size") else 0
        return torch.empty(0, 3, size, size), torch.empty(0, dtype=torch.long)
    images, labels = dataset.load(list(ids))
    return torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)
