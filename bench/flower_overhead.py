"""Time per round through Flower on loopback against the in-process engine, same model and data.

Three ways to run the same TrainConfig: ``privfed.federated.run_training`` (in-process),
the Flower ServerApp/ClientApp with messages delivered in-process (LoopbackGrid: Flower's
message handling and serialisation only), and a real deployment on 127.0.0.1 (SuperLink +
SuperNodes as processes, ``flwr run``: adds a Python process per message and Flower's
polling). Reports mean seconds per round (from each run's metrics.jsonl) and the ratios.

    .venv/bin/python bench/flower_overhead.py --rounds 3 --clients 2 --image-size 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def per_round(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return statistics.mean(r["seconds"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--client-size", type=int, default=100)
    parser.add_argument("--algorithm", default="fedavg")
    parser.add_argument("--skip-deployment", action="store_true", help="only engine vs LoopbackGrid")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from privfed.federated.engine import run_training
    from privfed.flower import launch
    from privfed.flower.client_app import app as client_app
    from privfed.flower.loopback import LoopbackGrid
    from privfed.flower.options import config_from_run_config
    from privfed.flower.server_app import run_server

    root = Path(tempfile.mkdtemp(prefix="privfed-flower-bench-"))
    plan = json.dumps({"kind": "sizes", "client_size": args.client_size, "server_size": args.client_size,
                       "test_size": args.client_size})
    run_config = {"algorithm": args.algorithm, "num-clients": args.clients, "rounds": args.rounds,
                  "image-size": args.image_size, "archs": "simple", "shared-width": 64, "plan": plan,
                  "observe": "none", "batch-size": 32, "data": "embedded", "device": "cpu"}
    results = {}

    config, _ = config_from_run_config({**run_config, "out-dir": str(root / "engine")})
    run_training(config, root / "engine", progress=False)
    results["engine"] = per_round(root / "engine")

    config, options = config_from_run_config({**run_config, "out-dir": str(root / "loopback")})
    nodes = [{"partition-id": k, "num-partitions": args.clients, "device": "cpu"} for k in range(args.clients)]
    run_server(LoopbackGrid(client_app, nodes), config, options)
    results["flower-loopback-grid"] = per_round(root / "loopback")

    if not args.skip_deployment:
        home = root / "flwr-home"
        env = launch.flower_env(home, {"OMP_NUM_THREADS": "1"})
        port = launch.free_port()
        processes = []
        try:
            link = launch.FlowerProcess("superlink", launch.superlink_command(port=port), root / "superlink.log", env).start()
            processes.append(link)
            launch.wait_for_port("127.0.0.1", port, 60, link)
            for k in range(args.clients):
                command = launch.supernode_command(f"127.0.0.1:{port}", nodes[k], port=launch.free_port(), insecure=True)
                processes.append(launch.FlowerProcess(f"supernode-{k}", command, root / f"supernode-{k}.log", env).start())
            launch.write_connection(home, f"127.0.0.1:{port}", insecure=True)
            app = launch.write_app(root / "app", {**run_config, "out-dir": str(root / "deployment")})
            started = time.perf_counter()
            subprocess.run(launch.run_command(app), env=env, check=True, timeout=3600, capture_output=True)
            results["flower-deployment-wall"] = time.perf_counter() - started
            results["flower-deployment"] = per_round(root / "deployment")
        finally:
            launch.stop_all(processes)

    base = results["engine"]
    print(f"{'mode':<24}{'s/round':>10}{'x engine':>10}")
    for mode in ("engine", "flower-loopback-grid", "flower-deployment"):
        if mode in results:
            print(f"{mode:<24}{results[mode]:>10.2f}{results[mode] / base:>10.1f}")
    if "flower-deployment-wall" in results:
        print(f"deployment wall time incl. start-up and describe: {results['flower-deployment-wall']:.1f}s")
    print(f"run directories under {root}")


if __name__ == "__main__":
    sys.exit(main())
