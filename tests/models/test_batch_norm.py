"""BatchNorm statistics recomputed after training (privfed.models.batch_norm)."""

from __future__ import annotations

import torch
from torch import nn

from privfed.models import build_model
from privfed.models.batch_norm import has_batch_norm, recalibrate_batch_norm


def conv_bn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))


def test_running_mean_becomes_the_mean_of_the_layer_input_over_all_images():
    model = conv_bn().eval()
    images = torch.rand(96, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model[0](images).mean((0, 2, 3))  # equal batches: the mean of batch means is the mean
    assert recalibrate_batch_norm(model, images, batch_size=32)
    torch.testing.assert_close(model[1].running_mean, expected, rtol=1e-5, atol=1e-6)
    assert model[1].momentum == 0.1 and not model.training  # momentum and mode restored


def test_uint8_images_are_scaled_like_training_and_a_last_batch_of_one_is_folded():
    model = conv_bn().train()
    images = torch.randint(0, 256, (65, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    recalibrate_batch_norm(model, images, batch_size=64)  # 64 + 1 would raise in BatchNorm
    with torch.no_grad():
        means = model[0](images.float() / 255).mean((0, 2, 3))
    torch.testing.assert_close(model[1].running_mean, means, rtol=1e-4, atol=1e-4)
    assert model.training


def test_models_without_batch_norm_are_left_alone():
    model = build_model("mobilenet_v3_small", image_size=64, dp=True)  # GroupNorm
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not has_batch_norm(model)
    assert not recalibrate_batch_norm(model, torch.rand(8, 3, 64, 64))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
