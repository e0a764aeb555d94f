"""The private step's clipped sum equals hand-clipped per-sample gradients, for every architecture.

Reference: a loop over samples with plain autograd, each sample's gradient clipped to
``max_grad_norm`` by its joint L2 norm over all parameters, then summed. The clip bound sits
between the smallest and largest per-sample norm, so some samples are clipped and some are
not; with noise 0 the optimizer's gradient is that sum over the expected batch size. The
check runs in float64 so that the tolerance can be tight (in float32, rounding alone differs
by up to ~1e-4 relative through the deep GroupNorm stacks).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from privfed.dp import DPConfig, SampleLevelPrivacy
from privfed.models import ARCHITECTURES, build_model


def hand_clipped_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clip: float) -> dict[str, torch.Tensor]:
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        norm = float(torch.sqrt(sum(g.pow(2).sum() for g in grads.values())))
        for n in total:
            total[n] += min(1.0, clip / (norm + 1e-6)) * grads[n]
    model.zero_grad()
    return total


def per_sample_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    norms = []
    for i in range(len(x)):
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), list(model.parameters()))
        norms.append(float(torch.sqrt(sum(g.pow(2).sum() for g in grads))))
    return norms


def private_summed_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clip: float, batch: int) -> dict[str, torch.Tensor]:
    n = 4 * batch
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(n, *x.shape[1:], dtype=x.dtype), torch.zeros(n, dtype=torch.long)), batch_size=batch)
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=0.0, max_grad_norm=clip), n, batch, 4, 1)
    with privacy.training(model, torch.optim.SGD(model.parameters(), lr=0.0), loader, torch.Generator().manual_seed(0)) as (pm, po, _):
        po.zero_grad()
        nn.functional.cross_entropy(pm(x), y).backward()
        po.step()
    return {n: p.grad * batch for n, p in model.named_parameters()}  # undo the mean over the expected batch


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_clipped_sum_equals_hand_clipped_per_sample_gradients(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, image_size=32, shared_width=8, dp=True).train().double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g, dtype=torch.float64) * torch.tensor([0.2, 1.0, 3.0, 6.0]).view(4, 1, 1, 1)
    y = torch.tensor([0, 1, 1, 0])
    norms = sorted(per_sample_norms(model, x, y))
    assert norms[-1] > 1.2 * norms[0], "the samples' gradient norms must differ for the test to bite"
    clip = (norms[1] * norms[2]) ** 0.5  # two samples clipped, two not
    expected = hand_clipped_sum(model, x, y, clip)
    got = private_summed_gradient(model, x, y, clip, batch=len(x))
    scale = max(e.abs().max().item() for e in expected.values())
    for name, e in expected.items():
        assert torch.allclose(got[name], e, rtol=1e-9, atol=1e-11 * scale), (name, (got[name] - e).abs().max().item())


def test_per_layer_clipping_clips_each_layer_to_its_share_of_the_bound() -> None:
    """clipping="per-layer": each layer's (weight + bias) part of each sample's gradient is clipped to C / sqrt(L)."""
    torch.manual_seed(0)
    model = build_model("simple", image_size=32, shared_width=8, dp=True).train().double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g, dtype=torch.float64) * torch.tensor([0.2, 1.0, 3.0, 6.0]).view(4, 1, 1, 1)
    y = torch.tensor([0, 1, 1, 0])
    layers = [m for m in model.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]
    clip = 0.5
    budget = clip / len(layers) ** 0.5
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    clipped_somewhere = False
    for i in range(len(x)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for layer in layers:
            own = list(layer.named_parameters(recurse=False))
            norm = float(torch.sqrt(sum(p.grad.pow(2).sum() for _, p in own)))
            clipped_somewhere |= norm > budget
            for local, p in own:
                name = next(n for n, q in model.named_parameters() if q is p)
                expected[name] += min(1.0, budget / (norm + 1e-6)) * p.grad
    model.zero_grad()
    assert clipped_somewhere
    n, batch = 16, 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(n, 3, 32, 32, dtype=x.dtype), torch.zeros(n, dtype=torch.long)), batch_size=batch)
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=0.0, max_grad_norm=clip, clipping="per-layer"), n, batch, 4, 1)
    with privacy.training(model, torch.optim.SGD(model.parameters(), lr=0.0), loader, torch.Generator().manual_seed(0)) as (pm, po, _):
        po.zero_grad()
        nn.functional.cross_entropy(pm(x), y).backward()
        po.step()
    scale = max(e.abs().max().item() for e in expected.values())
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad * batch, expected[name], rtol=1e-9, atol=1e-11 * scale), name
