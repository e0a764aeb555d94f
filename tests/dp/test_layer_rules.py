"""Every layer rule, in each of its branches, gives autograd's per-sample norms and weighted sums."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from privfed.dp import layer_rules
from privfed.dp.layer_rules import rule_for
from privfed.errors import PrivfedError

BATCH = 3


def per_sample_reference(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> list[dict[nn.Parameter, torch.Tensor]]:
    """Sample i's parameter gradients for the output gradient g[i], one autograd call each."""
    params = [p for p in layer.parameters() if p.requires_grad]
    grads = []
    for i in range(len(x)):
        out = layer(x[i : i + 1])
        grads.append(dict(zip(params, torch.autograd.grad(out, params, g[i : i + 1]))))
    return grads


def check_rule(layer: nn.Module, x: torch.Tensor) -> None:
    layer = layer.double()
    x = x.double()
    with torch.no_grad():
        g = torch.randn_like(layer(x))
    record = rule_for(layer, "layer")(layer, x, g)
    reference = per_sample_reference(layer, x, g)
    sq = torch.stack([sum(v.pow(2).sum() for v in r.values()) for r in reference])
    assert torch.allclose(record.sq_norms.double(), sq, rtol=1e-10), (record.sq_norms, sq)
    weights = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    summed = record.weighted_sum(weights)
    assert set(summed) == set(reference[0])
    for p, value in summed.items():
        expected = sum(w * r[p] for w, r in zip(weights, reference))
        assert value.shape == p.shape
        assert torch.allclose(value, expected, rtol=1e-10, atol=1e-12), p.shape


@pytest.fixture(params=["ghost", "per-sample"])
def branch(request, monkeypatch):
    """Force the factored (ghost) or the per-sample branch of mixed clipping."""
    monkeypatch.setattr(layer_rules, "prefer_ghost", lambda *sizes: request.param == "ghost")
    return request.param


CONVS = {
    "first layer": lambda: nn.Conv2d(3, 5, 3),
    "strided padded": lambda: nn.Conv2d(6, 4, 3, stride=2, padding=1),
    "dilated no bias": lambda: nn.Conv2d(6, 4, 3, padding=2, dilation=2, bias=False),
    "pointwise": lambda: nn.Conv2d(7, 5, 1),
    "pointwise strided": lambda: nn.Conv2d(7, 5, 1, stride=2),
    "rectangular": lambda: nn.Conv2d(6, 4, (3, 1), padding=(1, 0)),
}


@pytest.mark.parametrize("make", CONVS.values(), ids=CONVS.keys())
def test_dense_conv(make, branch) -> None:
    torch.manual_seed(0)
    layer = make()
    check_rule(layer, torch.randn(BATCH, layer.in_channels, 9, 9))


@pytest.mark.parametrize(
    "layer",
    [nn.Conv2d(6, 6, 5, stride=2, padding=2, groups=6), nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=False), nn.Conv2d(4, 6, 3, groups=2)],
    ids=["depthwise", "depthwise multiplier 2", "grouped"],
)
def test_grouped_conv(layer) -> None:
    torch.manual_seed(0)
    check_rule(layer, torch.randn(BATCH, layer.in_channels, 9, 9))


@pytest.mark.parametrize("shape", [(BATCH, 6), (BATCH, 4, 6)], ids=["flat", "sequence"])
def test_linear(shape, branch) -> None:
    torch.manual_seed(0)
    check_rule(nn.Linear(6, 5), torch.randn(*shape))


def test_frozen_bias_is_left_out() -> None:
    torch.manual_seed(0)
    layer = nn.Conv2d(4, 5, 3)
    layer.bias.requires_grad_(False)
    check_rule(layer, torch.randn(BATCH, 4, 7, 7))


def test_group_norm() -> None:
    torch.manual_seed(0)
    layer = nn.GroupNorm(2, 6)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2.0)
        layer.bias.uniform_(-1.0, 1.0)
    check_rule(layer, torch.randn(BATCH, 6, 5, 5) * 3 + 1)


@pytest.mark.parametrize("shape", [(BATCH, 6), (BATCH, 4, 6)], ids=["flat", "sequence"])
def test_layer_norm(shape) -> None:
    torch.manual_seed(0)
    check_rule(nn.LayerNorm(6), torch.randn(*shape))


def test_other_types_use_opacus_sampler_and_unknown_types_are_refused() -> None:
    torch.manual_seed(0)
    embedding = nn.Embedding(10, 4)
    x = torch.tensor([[1, 2], [3, 3], [9, 0]])
    g = torch.randn(BATCH, 2, 4)
    record = rule_for(embedding, "emb")(embedding, x, g)
    assert record.sq_norms.shape == (BATCH,)

    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.factor = nn.Parameter(torch.ones(1))

    with pytest.raises(PrivfedError, match="'head.scale'"):
        rule_for(Scale(), "head.scale")
