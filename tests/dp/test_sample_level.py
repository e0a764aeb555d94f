"""DP-SGD inside ``SampleLevelPrivacy.training``: exact per-sample clipping, calibrated noise,
and a model handed back clean."""

from __future__ import annotations

import pytest
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn

from privfed.dp import DPConfig, SampleLevelPrivacy
from privfed.errors import PrivfedError
from privfed.models import build_model


def model32(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("simple", image_size=32, shared_width=8, dp=True)


def hand_clipped_mean_gradient(model: nn.Module, x, y, clip: float, expected_batch: int) -> dict[str, torch.Tensor]:
    """Reference DP-SGD gradient without noise: per-sample grads one by one, clipped, summed, / B."""
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads.values()))
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for n in total:
            total[n] += factor * grads[n]
    model.zero_grad()
    return {n: g / expected_batch for n, g in total.items()}


@pytest.mark.parametrize("clip", [0.05, 100.0])
def test_private_gradient_equals_hand_clipped_per_sample_sum(tiny_loader, clip: float) -> None:
    n, batch = 16, 4
    loader = tiny_loader(n, batch)
    x, y = loader.dataset.tensors[0][:6], loader.dataset.tensors[1][:6]
    model = model32()
    expected = hand_clipped_mean_gradient(model, x, y, clip, expected_batch=batch)
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=0.0, max_grad_norm=clip), n, batch, 4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with privacy.training(model, optimizer, loader, torch.Generator().manual_seed(0)) as (pmodel, popt, _):
        popt.zero_grad()
        nn.functional.cross_entropy(pmodel(x), y).backward()
        popt.step()
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-6, rtol=1e-4), name


def test_noise_std_is_sigma_clip_over_expected_batch(tiny_loader) -> None:
    n, batch, sigma, clip = 16, 4, 3.0, 0.5
    loader = tiny_loader(n, batch)
    x, y = loader.dataset.tensors[0][:4], loader.dataset.tensors[1][:4]
    grads = {}
    for noise in (0.0, sigma):
        model = model32()
        privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=noise, max_grad_norm=clip), n, batch, 4, 1)
        with privacy.training(model, torch.optim.SGD(model.parameters(), lr=0.0), loader, torch.Generator().manual_seed(0)) as (pm, po, _):
            po.zero_grad()
            nn.functional.cross_entropy(pm(x), y).backward()
            po.step()
        grads[noise] = torch.cat([p.grad.flatten() for p in model.parameters()])
    noise = grads[sigma] - grads[0.0]
    assert noise.numel() > 5000
    assert noise.std().item() == pytest.approx(sigma * clip / batch, rel=0.05)


def test_model_comes_back_trained_with_its_own_names_and_no_hooks(tiny_loader) -> None:
    loader = tiny_loader(16, 4)
    model = model32()
    names = [n for n, _ in model.named_parameters()]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.0), 16, 4, 4, 1)
    with privacy.training(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, torch.Generator().manual_seed(0)) as (pm, po, pl):
        assert isinstance(pl.batch_sampler, UniformWithReplacementSampler)
        assert pl.batch_sampler.sample_rate == pytest.approx(0.25)
        for xb, yb in pl:
            po.zero_grad()
            nn.functional.cross_entropy(pm(xb), yb).backward()
            po.step()
    assert [n for n, _ in model.named_parameters()] == names
    assert list(model.state_dict()) == [k for k in model.state_dict() if not k.startswith("_module.")]
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks and not module._forward_pre_hooks
        assert not hasattr(module, "activations")
    for p in model.parameters():
        assert not any(hasattr(p, a) for a in ("grad_sample", "_forward_counter", "summed_grad", "_privfed_lowrank"))
    # a plain step afterwards is ordinary autograd
    model.zero_grad()
    xb, yb = loader.dataset.tensors[0][:2], loader.dataset.tensors[1][:2]
    nn.functional.cross_entropy(model(xb), yb).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_regularizer_gradient_is_added_after_noise(tiny_loader) -> None:
    loader = tiny_loader(16, 4)
    x, y = loader.dataset.tensors[0][:4], loader.dataset.tensors[1][:4]
    model = model32()
    anchor = [p.detach().clone() + 0.3 for p in model.parameters()]
    mu = 0.7
    clean = hand_clipped_mean_gradient(model, x, y, 1.0, expected_batch=4)
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=0.0), 16, 4, 4, 1)
    with privacy.training(model, torch.optim.SGD(model.parameters(), lr=0.0), loader, torch.Generator().manual_seed(0)) as (pm, po, _):
        po.set_regularizer(lambda: 0.5 * mu * sum((p - a).pow(2).sum() for p, a in zip(model.parameters(), anchor)))
        po.zero_grad()
        nn.functional.cross_entropy(pm(x), y).backward()
        po.step()
    for (name, p) in model.named_parameters():
        assert torch.allclose(p.grad, clean[name] - mu * 0.3, atol=1e-5), name


def test_empty_poisson_batch_still_steps_and_is_accounted(tiny_loader) -> None:
    loader = tiny_loader(16, 4)
    model = model32()
    before = [p.detach().clone() for p in model.parameters()]
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.0), 16, 4, 4, 1)
    with privacy.training(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, torch.Generator().manual_seed(0)) as (pm, po, _):
        po.zero_grad()
        logits = pm(torch.zeros(0, 3, 32, 32))
        nn.functional.cross_entropy(logits, torch.zeros(0, dtype=torch.long)).backward()  # nan loss, empty grads
        po.step()
    assert privacy.steps == 1
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # noise only
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_batchnorm_model_and_wrong_loader_are_refused(tiny_loader) -> None:
    loader = tiny_loader(16, 4)
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.0), 16, 4, 4, 1)
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(PrivfedError, match="dp=True"):
        with privacy.training(bn, torch.optim.SGD(bn.parameters(), lr=0.1), loader, torch.Generator()):
            pass
    other = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.0), 99, 4, 4, 1)
    model = model32()
    with pytest.raises(PrivfedError, match="99"):
        with other.training(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, torch.Generator()):
            pass


def test_same_seed_same_training(tiny_loader) -> None:
    results = []
    for _ in range(2):
        model = model32()
        privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.0), 16, 4, 4, 1)
        with privacy.training(model, torch.optim.SGD(model.parameters(), lr=0.1), tiny_loader(16, 4), torch.Generator().manual_seed(3)) as (pm, po, pl):
            for xb, yb in pl:
                po.zero_grad()
                nn.functional.cross_entropy(pm(xb), yb).backward()
                po.step()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(results[0], results[1])
