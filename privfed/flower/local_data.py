"""A client's own data, found from its SuperNode's node config.

Each hospital points its SuperNode at its own folder (``data-path``); the sample ids it
reports to the server are the dataset's ids, i.e. relative file names for an image
folder, so ``split.json`` says which files each client trained on without any image
leaving the client. With ``partition-id``/``num-partitions`` a node uses one client's share
of the split the run's plan and seed make of the data, exactly the share the in-process
engine gives client ``partition-id``; tests and single-machine demos use that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from privfed.errors import PrivfedError
from privfed.federated.config import TrainConfig
from privfed.flower.options import NodeOptions


@dataclass
class LocalData:
    ids: list[str]
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def split_plan(config: TrainConfig):
    from privfed.data.split import SplitPlan

    plan = config.plan
    if isinstance(plan, dict):
        return SplitPlan.from_dict(plan)
    if isinstance(plan, str):
        return SplitPlan(kind=plan)
    return plan


def load_local_data(node: NodeOptions, config: TrainConfig, *, need_images: bool = True) -> LocalData:
    """The node's training ids (and images), plus test images when it has any."""
    from privfed.data import make_split, open_dataset

    data_path = node.data_for(config)
    try:
        dataset = open_dataset(data_path, config.image_size)
    except PrivfedError as exc:
        raise PrivfedError(f"--node-config data-path: {exc}") from None
    test_x = test_y = None
    if node.partition_id is not None:
        split = make_split(dataset, node.num_partitions, split_plan(config), config.seed)
        ids = list(split.clients[node.partition_id])
        if need_images and split.test:
            test_x, test_y = dataset.load(list(split.test))
        description = f"{data_path} partition {node.partition_id}/{node.num_partitions}"
    else:
        ids = list(dataset.ids)
        if need_images and node.test_path:
            test_set = open_dataset(node.test_path, config.image_size)
            test_x, test_y = test_set.load(list(test_set.ids))
        description = data_path
    if not ids:
        raise PrivfedError(f"--node-config data-path {data_path}: this node has no training images")
    if need_images:
        images, labels = dataset.load(ids)
    else:
        images, labels = torch.empty(0), torch.as_tensor(dataset.labels)[:0]
    return LocalData(ids, images, torch.as_tensor(labels, dtype=torch.long), list(dataset.classes),
                     test_x, None if test_y is None else torch.as_tensor(test_y, dtype=torch.long), description)
