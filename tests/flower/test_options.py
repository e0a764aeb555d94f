"""Run config / node config parsing: Flower's flat tables -> privfed's typed options."""

import pytest

from privfed.errors import PrivfedError
from privfed.federated.config import TrainConfig
from privfed.flower.options import NodeOptions, config_from_run_config, run_config_items


def test_hyphenated_keys_and_lists_reach_train_config(tmp_path):
    config, options = config_from_run_config({
        "algorithm": "partial", "num-clients": 2, "archs": "simple,simple", "shared-width": "8,4", "common-width": 8,
        "image-size": 32, "dp-level": "none", "out-dir": str(tmp_path), "min-clients": 1, "round-timeout": 5,
    })
    assert config.shared_width == [8, 4] and config.common_width == 8 and config.archs == ["simple", "simple"]
    assert options.out_dir == tmp_path and options.min_clients == 1 and options.round_timeout == 5.0


def test_round_trip_of_run_config_items(tmp_path):
    items = run_config_items({"algorithm": "fedprox", "shared_width": [8, 8], "dp": {"level": "none"}, "mu": 0.5,
                              "image_size": 32, "num_clients": 2})
    assert items == {"algorithm": "fedprox", "shared-width": "8,8", "dp-level": "none", "mu": 0.5, "image-size": 32,
                     "num-clients": 2}
    config, _ = config_from_run_config({**items, "out-dir": str(tmp_path)})
    assert config.mu == 0.5 and config.shared_width == [8, 8]


@pytest.mark.parametrize("bad, message", [
    ({"algoritm": "fedavg"}, "did you mean 'algorithm'"),
    ({"algorithm": "local"}, "nothing is exchanged"),
    ({"out-dir": "relative/run"}, "absolute path"),
    ({"min-clients": 9}, "min-clients=9"),
])
def test_bad_run_config_names_the_key(tmp_path, bad, message):
    run_config = {"num-clients": 2, "image-size": 32, "out-dir": str(tmp_path), **bad}
    with pytest.raises(PrivfedError, match=message):
        config_from_run_config(run_config)


def test_node_config():
    node = NodeOptions.from_node_config({"partition-id": 1, "num-partitions": 3})
    assert (node.partition_id, node.num_partitions, node.data_path) == (1, 3, None)
    # A partition of nothing named is a partition of the run's data (the server splits that)...
    assert node.data_for(TrainConfig(data="/srv/mri")) == "/srv/mri"
    # ...a whole node of nothing named is the embedded set; a named path always wins.
    assert NodeOptions.from_node_config({}).data_for(TrainConfig(data="/srv/mri")) == "embedded"
    assert NodeOptions.from_node_config({"data-path": "/d"}).data_for(TrainConfig(data="/srv/mri")) == "/d"
    with pytest.raises(PrivfedError, match="together"):
        NodeOptions.from_node_config({"partition-id": 1})
    with pytest.raises(PrivfedError, match="0..num-partitions-1"):
        NodeOptions.from_node_config({"partition-id": 3, "num-partitions": 3})
    with pytest.raises(PrivfedError, match="did you mean 'data-path'"):
        NodeOptions.from_node_config({"data-pth": "/x"})
