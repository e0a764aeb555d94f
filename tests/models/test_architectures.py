"""Every architecture: output shape, the `shared` layer's size, fc width from image size."""

import pytest
import torch

from privfed.errors import PrivfedError
from privfed.models import ARCHITECTURES, build_model
from privfed.models.simple import simple_feature_dim


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("dp", [False, True])
def test_output_shape_and_shared_layer(arch, dp):
    torch.manual_seed(0)
    model = build_model(arch, num_classes=2, image_size=32, shared_width=64, dp=dp)
    model.eval()
    logits = model(torch.rand(3, 3, 32, 32))
    assert logits.shape == (3, 2)
    assert model.get_submodule("shared") is model.shared
    assert sum(p.numel() for p in model.shared.parameters()) == 64 * 64 + 64
    assert model.shared_input(torch.rand(2, 3, 32, 32)).shape == (2, 64)


def test_default_shared_layer_is_seed_size():
    model = build_model("simple", image_size=224)
    assert tuple(model.shared.weight.shape) == (1024, 1024)
    assert sum(p.numel() for p in model.shared.parameters()) == 1024 * 1024 + 1024


def test_simple_matches_seed_at_224():
    model = build_model("simple", image_size=224)
    assert model.fc.in_features == 16928 == 32 * 23 * 23
    assert model.backbone(torch.rand(1, 3, 224, 224)).shape == (1, 16928)


@pytest.mark.parametrize("size", [23, 32, 64, 100])
def test_simple_fc_width_follows_image_size(size):
    model = build_model("simple", image_size=size, shared_width=8)
    assert model.backbone(torch.rand(1, 3, size, size)).shape[1] == simple_feature_dim(size) == model.fc.in_features


def test_no_batchnorm_when_dp():
    for arch in ARCHITECTURES:
        model = build_model(arch, image_size=32, shared_width=8, dp=True)
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()), arch


def test_no_inplace_activations():
    for arch in ARCHITECTURES:
        model = build_model(arch, image_size=32, shared_width=8)
        inplace = [n for n, m in model.named_modules() if getattr(m, "inplace", False)]
        assert inplace == [], (arch, inplace[:3])


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = build_model("simple", image_size=32, shared_width=8).state_dict()
    torch.manual_seed(3)
    b = build_model("simple", image_size=32, shared_width=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_architecture_suggests_closest():
    with pytest.raises(PrivfedError, match="did you mean 'densenet121'"):
        build_model("densenet12")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_too_small_image_names_option(arch):
    with pytest.raises(PrivfedError, match="--image-size 16 is too small"):
        build_model(arch, image_size=16)
