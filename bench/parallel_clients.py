"""Rounds per hour: a round's clients side by side (Flower simulation, Ray) against one after another.

Both run the same TrainConfig on the same machine in the same invocation: the in-process
engine (``privfed train``: clients in turn, torch using every core) and
``privfed flower simulate`` (one Ray actor per client, ``--client-cpus`` cores each, as
many at once as fit). Reports seconds per round from each run's metrics.jsonl (first
round left out: it includes Ray's and the actors' start-up, reported separately as wall
time) and the speed-up. On 2 cores expect little: the engine already uses both cores
inside each client's convolutions; the simulation wins where cores or GPUs outnumber
what one client can use.

    .venv/bin/python bench/parallel_clients.py [--clients 4] [--rounds 3] [--image-size 64] [--client-cpus 1] [--data embedded]
        [--archs simple,mobilenet_v3_large,mobilenet_v3_small,densenet121 --algorithm partial] [--sequential-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def per_round(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steady = rows[1:] or rows
    return statistics.mean(r["seconds"] for r in steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--client-size", type=int, default=200)
    parser.add_argument("--algorithm", default="fedavg")
    parser.add_argument("--archs", default="simple",
                        help="one architecture, or one per client: simple,mobilenet_v3_large,mobilenet_v3_small,densenet121 "
                             "with --algorithm partial is the seed's mixed federation")
    parser.add_argument("--sequential-only", action="store_true", help="only the in-process engine's seconds per round")
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data", default="embedded", help="embedded, or e.g. ../shared/data/brain-mri")
    parser.add_argument("--client-cpus", type=float, default=1.0)
    parser.add_argument("--client-gpus", type=float, default=0.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    from privfed.federated.engine import run_training
    from privfed.flower.options import config_from_run_config
    from privfed.flower.simulation import ClientResources, simulate

    root = Path(tempfile.mkdtemp(prefix="privfed-parallel-bench-"))
    plan = json.dumps({"kind": "sizes", "client_size": args.client_size, "server_size": args.client_size,
                       "test_size": args.client_size})
    run_config = {"algorithm": args.algorithm, "num-clients": args.clients, "rounds": args.rounds,
                  "image-size": args.image_size, "archs": args.archs, "plan": plan, "observe": "none",
                  "data": args.data, "device": args.device, "local-epochs": str(args.local_epochs),
                  "batch-size": args.batch_size}

    config, _ = config_from_run_config({**run_config, "out-dir": str(root / "sequential")})
    torch.set_num_threads(cores)
    started = time.perf_counter()
    run_training(config, root / "sequential", progress=False)
    wall = {"sequential": time.perf_counter() - started}
    if args.sequential_only:
        rows = [json.loads(line) for line in (root / "sequential" / "metrics.jsonl").read_text().splitlines() if line.strip()]
        print(f"{args.clients} clients ({args.archs}, {args.algorithm}), {args.image_size}x{args.image_size}, "
              f"{args.client_size} images each, {cores} cores: seconds per round "
              + ", ".join(f"{r['seconds']:.1f}" for r in rows) + f" (steady {per_round(root / 'sequential'):.1f})")
        return

    resources = ClientResources(args.client_cpus, args.client_gpus)
    gpus = torch.cuda.device_count()
    started = time.perf_counter()
    simulate({**run_config, "out-dir": str(root / "parallel")}, resources, total_cpus=cores, total_gpus=gpus)
    wall["parallel"] = time.perf_counter() - started

    seconds = {mode: per_round(root / mode) for mode in ("sequential", "parallel")}
    at_once = min(args.clients, resources.parallel_clients(cores, gpus))
    print(f"{args.clients} clients, {args.image_size}x{args.image_size}, {args.client_size} images each, "
          f"{cores} cores, {gpus} GPUs; parallel: {at_once} clients at once ({args.client_cpus:g} cores"
          f"{f', {args.client_gpus:g} GPU' if args.client_gpus else ''} each)")
    print(f"{'mode':<12}{'s/round':>10}{'rounds/h':>10}{'wall s':>10}")
    for mode in ("sequential", "parallel"):
        print(f"{mode:<12}{seconds[mode]:>10.2f}{3600 / seconds[mode]:>10.0f}{wall[mode]:>10.1f}")
    print(f"speed-up (rounds per hour, parallel / sequential): {seconds['sequential'] / seconds['parallel']:.2f}x")
    print(f"run directories under {root}")


if __name__ == "__main__":
    sys.exit(main())
