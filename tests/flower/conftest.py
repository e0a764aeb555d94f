import json

import pytest


TINY_PLAN = json.dumps({"kind": "sizes", "client_size": 20, "server_size": 20, "test_size": 20})


@pytest.fixture
def tiny_run_config():
    return make_run_config


def make_run_config(out_dir, algorithm="fedavg", num_clients=2, **extra):
    """Smallest meaningful run: 32x32 images, 20 per party, shared width 8."""
    config = {"algorithm": algorithm, "num-clients": num_clients, "rounds": 2, "image-size": 32, "archs": "simple",
              "shared-width": 8, "plan": TINY_PLAN, "out-dir": str(out_dir), "observe": "all", "batch-size": 10,
              "data": "embedded", "device": "cpu"}
    config.update(extra)
    return config
