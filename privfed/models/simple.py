"""The seed's SimpleModel: three small convolutions, then the shared head.

At 224x224 the flattened conv output is 32 x 23 x 23 = 16928 values, as in the seed; at
other sizes the width of ``fc`` is computed from the image size.
"""

from __future__ import annotations

import torch
from torch import nn

from privfed.errors import PrivfedError
from privfed.models.head import he_init


class SimpleBackbone(nn.Module):
    #: pixels between neighbouring cells of :meth:`feature_map` and the centre of cell (0, 0)'s
    #: receptive field (conv k3, pool 3, conv k3, conv k3, pool 3: cell i sees rows 9i to 9i + 22),
    #: for attacks that decode the map locally (attacks/inversion/local_decoder.py)
    map_stride = 9
    map_centre = 11

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3)
        self.pool = nn.MaxPool2d(3)
        self.conv2 = nn.Conv2d(16, 16, kernel_size=3)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.act = nn.ReLU()
        for conv in (self.conv1, self.conv2, self.conv3):
            he_init(conv)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(x)))
        x = self.act(self.conv2(x))
        return self.pool(self.act(self.conv3(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.feature_map(x), 1)


def simple_feature_side(image_size: int) -> int:
    side = (image_size - 2) // 3  # conv1 (k3) then MaxPool(3)
    side = side - 2 - 2  # conv2, conv3
    return side // 3  # MaxPool(3)


MIN_IMAGE_SIZE = 23


def simple_feature_dim(image_size: int) -> int:
    if image_size < MIN_IMAGE_SIZE:
        raise PrivfedError(
            f"--image-size {image_size} is too small for architecture 'simple'; use at least {MIN_IMAGE_SIZE}"
        )
    return 32 * simple_feature_side(image_size) ** 2
