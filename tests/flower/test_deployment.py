"""A real deployment on loopback: one SuperLink and three SuperNodes as separate processes.

Processes are Flower's own executables (``flower-superlink``, ``flower-supernode``, ``flwr
run``) on 127.0.0.1 with free ports; every wait is bounded and teardown stops every process
(and Flower's detached helpers) whatever happens. Slow by nature (Flower starts one Python
process per message), so kept to two runs of two rounds on 20 images per party.
"""

import hashlib
import signal
import subprocess
import time

import pytest

pytest.importorskip("flwr", reason="Flower (flwr) is not installed: pip install 'privfed[flower]'")

from privfed.flower import launch
from privfed.io import load_tensors, read_json, read_jsonl

pytestmark = pytest.mark.slow

NODES = 3
RUN_TIMEOUT = 420


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("flower")
    home = root / "flwr-home"
    env = launch.flower_env(home)
    port = launch.free_port()
    processes = []
    try:
        superlink = launch.FlowerProcess("superlink", launch.superlink_command(port=port), root / "superlink.log", env)
        processes.append(superlink.start())
        launch.wait_for_port("127.0.0.1", port, 60, superlink)
        nodes = []
        for k in range(NODES):
            command = launch.supernode_command(f"127.0.0.1:{port}", {"partition-id": k, "num-partitions": NODES},
                                               port=launch.free_port(), insecure=True)
            nodes.append(launch.FlowerProcess(f"supernode-{k}", command, root / f"supernode-{k}.log", env).start())
        processes.extend(nodes)
        launch.write_connection(home, f"127.0.0.1:{port}", insecure=True)
        yield {"root": root, "env": env, "nodes": nodes}
    finally:
        launch.stop_all(processes)
        assert not any(p.alive() for p in processes)


def _start_run(cluster, name, run_config):
    app = launch.write_app(cluster["root"] / f"app-{name}", run_config)
    log = open(cluster["root"] / f"flwr-run-{name}.log", "wb")
    process = subprocess.Popen(launch.run_command(app), env=cluster["env"], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return process, cluster["root"] / f"flwr-run-{name}.log"


def _finish(process, log_path, timeout=RUN_TIMEOUT):
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        launch._signal_group(process.pid, signal.SIGKILL)
        process.wait(10)
        pytest.fail(f"flwr run did not finish in {timeout}s:\n{log_path.read_text()[-3000:]}")
    return log_path.read_text(errors="replace")


def test_partial_two_rounds_over_flower(cluster, tiny_run_config):
    out = cluster["root"] / "partial-run"
    process, log = _start_run(cluster, "partial", tiny_run_config(out, "partial", NODES, **{"connect-timeout": 60, "round-timeout": 300}))
    text = _finish(process, log)
    assert (out / "summary.json").is_file(), text[-3000:]
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["round"] for r in rows] == [1, 2]
    assert all(c["sampled"] for r in rows for c in r["clients"])
    for k in range(NODES):  # only the shared layer left each client
        assert set(load_tensors(out / "observed" / "round_2" / f"client_{k}.safetensors")) == {"shared.weight", "shared.bias"}
        assert rows[0]["clients"][k]["bytes_up"] == (8 * 8 + 8) * 4
    split = read_json(out / "split.json")
    assert [len(ids) for ids in split["clients"]] == [20] * NODES
    assert not set(split["clients"][0]) & set(split["test"])


def test_fedavg_survives_a_supernode_killed_mid_run(cluster, tiny_run_config):
    out = cluster["root"] / "fedavg-run"
    config = tiny_run_config(out, "fedavg", NODES, **{"min-clients": 2, "connect-timeout": 60, "round-timeout": 300})
    process, log = _start_run(cluster, "fedavg", config)
    deadline = time.monotonic() + RUN_TIMEOUT
    metrics = out / "metrics.jsonl"
    while not (metrics.is_file() and read_jsonl(metrics)) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
    assert metrics.is_file(), log.read_text()[-3000:]
    written = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "observed" / "round_1").iterdir()}
    cluster["nodes"][2].stop(signal.SIGTERM)  # hospital 2 goes away during round 2
    text = _finish(process, log)
    assert (out / "summary.json").is_file(), text[-3000:]
    rows = read_jsonl(out / "metrics.jsonl")
    assert [sorted(c["id"] for c in r["clients"] if c["sampled"]) for r in rows] == [[0, 1, 2], [0, 1]]
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in written} == written  # round 1 kept as written
    assert read_json(out / "summary.json")["final_round"] == 2
    assert set(load_tensors(out / "models" / "global.safetensors")) >= {"fc.weight", "shared.weight", "classifier.weight"}
