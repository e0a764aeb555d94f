"""Every architecture built with dp=True passes Opacus' validator and trains under DP-SGD."""

from __future__ import annotations

import pytest
import torch
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from privfed.dp import DPConfig, SampleLevelPrivacy
from privfed.models import ARCHITECTURES, build_model


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_dp_model_validates_and_takes_a_private_step(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, image_size=32, shared_width=16, dp=True)
    assert ModuleValidator.validate(model, strict=False) == []
    names = list(model.state_dict())
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 3, 32, 32, generator=g), torch.randint(0, 2, (4,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.0, max_grad_norm=1.0), 4, 2, steps_per_round=1, rounds=1)
    with privacy.training(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, torch.Generator().manual_seed(1)) as (pm, po, _):
        po.zero_grad()
        nn.functional.cross_entropy(pm(x[:2]), y[:2]).backward()
        po.step()
    assert list(model.state_dict()) == names
    changed = [k for k, v in model.state_dict().items() if not torch.equal(before[k], v)]
    assert set(changed) == {n for n, _ in model.named_parameters()}  # noise reaches every parameter
    assert privacy.steps == 1 and privacy.epsilon() > 0
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
    model.zero_grad()
    nn.functional.cross_entropy(model(x[2:]), y[2:]).backward()  # plain autograd works again
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "densenet121"])
def test_non_dp_torchvision_models_are_rejected_by_opacus(arch: str) -> None:
    model = build_model(arch, image_size=32, shared_width=16, dp=False)
    assert ModuleValidator.validate(model, strict=False)  # BatchNorm: why dp=True exists
