"""MobileNetV3 (large, small) and DenseNet121 backbones from torchvision, randomly initialised.

Only ``features`` of each torchvision model is kept; pooling is ours, so DenseNet's
functional in-place ReLU in ``DenseNet.forward`` is never called. MobileNetV3's residual
``result += input`` is replaced by an out-of-place addition so Opacus' hooks see no
in-place op.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import densenet121, mobilenet_v3_large, mobilenet_v3_small
from torchvision.models.mobilenetv3 import InvertedResidual

from privfed.models.dp_compat import disable_inplace, replace_batchnorm


class OutOfPlaceInvertedResidual(nn.Module):
    """torchvision's InvertedResidual with ``result = result + input`` instead of ``+=``."""

    def __init__(self, block: InvertedResidual) -> None:
        super().__init__()
        self.block = block.block
        self.use_res_connect = block.use_res_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        return result + x if self.use_res_connect else result


class PooledFeatures(nn.Module):
    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.act(self.features(x))), 1)


def _finish(features: nn.Module, dp: bool) -> nn.Module:
    disable_inplace(features)
    if dp:
        replace_batchnorm(features)
    return PooledFeatures(features)


def _mobilenet(builder) -> tuple[nn.Module, int]:
    net = builder(weights=None)
    features = net.features
    for i, layer in enumerate(features):
        if isinstance(layer, InvertedResidual):
            features[i] = OutOfPlaceInvertedResidual(layer)
    return features, net.classifier[0].in_features


def mobilenet_v3_large_backbone(dp: bool) -> tuple[nn.Module, int]:
    features, dim = _mobilenet(mobilenet_v3_large)
    return _finish(features, dp), dim


def mobilenet_v3_small_backbone(dp: bool) -> tuple[nn.Module, int]:
    features, dim = _mobilenet(mobilenet_v3_small)
    return _finish(features, dp), dim


def densenet121_backbone(dp: bool) -> tuple[nn.Module, int]:
    net = densenet121(weights=None, memory_efficient=False)
    return _finish(net.features, dp), net.classifier.in_features
