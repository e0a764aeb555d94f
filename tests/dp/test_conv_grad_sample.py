"""The grouped-conv per-sample gradients equal Opacus' im2col ones (and autograd's)."""

from __future__ import annotations

import pytest
import torch
from opacus.grad_sample.conv import compute_conv_grad_sample
from torch import nn

from privfed.dp.conv_grad_sample import conv2d_grad_sample


@pytest.mark.parametrize(
    "layer",
    [
        nn.Conv2d(3, 5, 3),  # groups=1: Opacus path
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.Conv2d(6, 6, 5, stride=2, padding=2, groups=6),  # MobileNet depthwise
        nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=False),  # depthwise, channel multiplier 2
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4),  # depthwise, dilated
        nn.Conv2d(4, 6, 3, groups=2),  # not covered: falls back to Opacus
    ],
)
def test_matches_opacus_and_autograd(layer: nn.Conv2d) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, layer.in_channels, 11, 11)
    out = layer(x)
    g = torch.randn_like(out)
    ours = conv2d_grad_sample(layer, [x], g)
    reference = compute_conv_grad_sample(layer, [x], g)
    for p in ours:
        assert ours[p].shape == (3, *p.shape)
        assert torch.allclose(ours[p], reference[p], atol=1e-4)
    # the per-sample gradients sum to autograd's batch gradient
    layer.zero_grad()
    out.backward(g)
    assert torch.allclose(ours[layer.weight].sum(0), layer.weight.grad, atol=1e-4)
