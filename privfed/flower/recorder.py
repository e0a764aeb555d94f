"""The server side of a Flower run writes the run directory of ``privfed train``.

File and field names come from docs/run-directory.md and the engine's
:class:`~privfed.federated.rundir.RunDir`; every file is written atomically and
``metrics.jsonl`` grows by one line per finished round, so a run that dies (a SuperNode
lost below ``min-clients``, the SuperLink stopped) keeps every round already written.

What a real server cannot know is not written: no ``oracle/`` at all (for full-model
algorithms a client's state at the start of a round is ``global_before``, which attacks
read directly), and ``models/client_<k>`` only for full-model algorithms without client-level DP
(the model a client trained is exactly what it sent in its last round).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from privfed import RUN_FORMAT_VERSION, __version__
from privfed.errors import PrivfedError
from privfed.federated.config import TrainConfig
from privfed.federated.evaluation import TEST_FIELDS, final_test_fields
from privfed.federated.rundir import RunDir, payload_bytes
from privfed.federated.strategy import ClientUpdate
from privfed.io import append_jsonl, read_jsonl, write_json


class RunRecorder:
    def __init__(self, config: TrainConfig, out_dir: str | Path, kind: str) -> None:
        self.config = config
        self.run = RunDir(Path(out_dir))
        self.kind = kind
        n = config.num_clients
        self.bytes_up = [0] * n
        self.bytes_down = [0] * n
        self.epsilon: list[float | None] = [None] * n
        self.last_rows: list[dict[str, Any]] = []

    def start(self, split: Any, command: str) -> None:
        """config.json and split.json; refuses a folder that already holds a run."""
        from privfed.data.split import save_split

        if self.run.config.exists():
            raise PrivfedError(f"run config out-dir {self.run.root}: already holds a run; choose another out-dir")
        self.run.root.mkdir(parents=True, exist_ok=True)
        write_json(self.run.config, {"privfed_version": __version__, "format_version": RUN_FORMAT_VERSION,
                                     "command": command, **self.config.to_dict()})
        save_split(split, self.run.split)

    def save(self, path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
        self.run.save(path, tensors)

    def client_rows(self, server_round: int, updates: Mapping[int, ClientUpdate], metrics: Mapping[int, dict],
                    down: Mapping[int, int]) -> list[dict[str, Any]]:
        """One row per client, as the engine writes them; clients that did not reply have nulls."""
        rows = []
        for k in range(self.config.num_clients):
            update, m = updates.get(k), metrics.get(k, {})
            up = payload_bytes(update.tensors) if update is not None else 0
            self.bytes_up[k] += up
            self.bytes_down[k] += down.get(k, 0)
            if m.get("epsilon") is not None:
                self.epsilon[k] = float(m["epsilon"])
            rows.append({
                "id": k, "arch": self.config.arch_of(k), "sampled": update is not None,
                "train_loss": m.get("train-loss"),
                **{f"test_{name}": m.get(f"test-{name.replace('_', '-')}") for name in TEST_FIELDS},
                "bytes_up": up, "bytes_down": down.get(k, 0), "epsilon": self.epsilon[k],
                "num_samples": int(m.get("num-examples", update.num_samples if update else 0)),
                "local_steps": update.local_steps if update is not None else 0,
            })
        self.last_rows = rows
        return rows

    def round_row(self, server_round: int, rows: list[dict[str, Any]], evaluation: Mapping[str, Any], seconds: float) -> None:
        append_jsonl(self.run.metrics, {
            "round": server_round, "algorithm": self.config.algorithm, "clients": rows, **evaluation,
            "bytes_up": sum(r["bytes_up"] for r in rows), "bytes_down": sum(r["bytes_down"] for r in rows),
            "seconds": seconds,
        })

    def observe(self, server_round: int, updates: Mapping[int, ClientUpdate], settings: Mapping[int, Any],
                rows: list[dict[str, Any]], global_before: Mapping[str, torch.Tensor],
                sent: Mapping[int, Mapping[str, torch.Tensor]] | None = None,
                server_state: Mapping[str, torch.Tensor] | None = None) -> None:
        c = self.config
        folder = self.run.observed(server_round)
        entries = []
        for k, update in sorted(updates.items()):
            self.save(folder / f"client_{k}.safetensors", update.tensors)
            if sent is not None:
                self.save(folder / f"sent_client_{k}.safetensors", sent[k])
            entries.append({
                "client": k, "arch": c.arch_of(k), "num_samples": update.num_samples, "local_epochs": c.epochs_of(k),
                "local_steps": update.local_steps, "batch_size": c.batch_size, "lr": settings[k].lr,
                "optimizer": settings[k].optimizer, "momentum": settings[k].momentum, "mu": settings[k].mu,
                "balance_classes": settings[k].balance_classes, "shared_width": c.width_of(k),
                "file": f"client_{k}.safetensors", "bytes_up": rows[k]["bytes_up"], "bytes_down": rows[k]["bytes_down"],
            })
        self.save(folder / "global_before.safetensors", global_before)
        meta = {"round": server_round, "algorithm": c.algorithm, "kind": self.kind, "clients": entries,
                "dp": dataclasses.asdict(c.dp), "seed": c.seed, "transport": "flower"}
        if server_state is not None:
            self.save(folder / "server_model.safetensors", server_state)
            meta.update({"common_width": c.common_width, "server_arch": c.server_arch, "aggregation": c.aggregation,
                         "server_epochs": c.server_epochs})
        write_json(folder / "meta.json", meta)

    def finish(self, elapsed: float, models: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, Any]:
        """models/*.safetensors and summary.json (fields as the engine writes them)."""
        c = self.config
        for name, state in models.items():
            self.save(self.run.model(name), state)
        rows = read_jsonl(self.run.metrics) if self.run.metrics.is_file() else []
        last = rows[-1] if rows else {}
        clients = [dict(r, bytes_up_total=self.bytes_up[r["id"]], bytes_down_total=self.bytes_down[r["id"]])
                   for r in last.get("clients", [])]
        up, down = sum(r["bytes_up"] for r in rows), sum(r["bytes_down"] for r in rows)
        summary: dict[str, Any] = {"algorithm": c.algorithm, "rounds": c.rounds, "final_round": last.get("round", 0),
                                   "clients": clients, "transport": "flower"}
        summary.update(final_test_fields(last, clients))
        epsilons = [e for e in self.epsilon if e is not None]
        dp_on = c.dp.level != "none"
        summary.update({
            "bytes_up_total": up, "bytes_down_total": down, "bytes_per_round": (up + down) / len(rows) if rows else 0,
            "wall_seconds": elapsed, "dp_level": c.dp.level, "epsilon": max(epsilons) if epsilons else None,
            "dp_neighbouring": c.dp.relation if dp_on else None,
            "delta": c.dp.delta if dp_on else None, "noise_multiplier": c.dp.noise_multiplier if dp_on else None,
            "max_grad_norm": c.dp.max_grad_norm if dp_on else None,
            "privfed_version": __version__, "format_version": RUN_FORMAT_VERSION,
        })
        write_json(self.run.summary, summary)
        return summary
