"""The local decoder: its geometry against `simple`'s receptive fields, exact recovery of a known local map, real slices."""

from __future__ import annotations

import pytest
import torch

from attacks.inversion import posterior as posterior_module
from attacks.inversion.local_decoder import MapGeometry, NormalEquations, assemble, blocks, design
from attacks.inversion.posterior import FeaturePosterior, _embed
from attacks.metrics import psnr
from privfed.models import build_model

#: measured +7.6 dB over the mean image on these six slices (128 server images at 128x128, no copies)
DECODER_FLOOR_DB = 4.0


def simple(size: int):
    torch.manual_seed(0)
    return build_model("simple", num_classes=2, image_size=size, shared_width=1024).eval()


@pytest.mark.parametrize("size", [64, 128, 224])
def test_blocks_tile_the_image_exactly(size):
    geometry = MapGeometry.of(simple(size), size)
    images = torch.rand(2, 1, size, size)
    rows = blocks(images.flatten(1), geometry, 1)
    before, after, _ = geometry.layout()
    assert rows.shape == (2 * (geometry.side + before + after) ** 2, geometry.stride**2)
    assert torch.equal(assemble(rows, 2, geometry, 1), images.flatten(1))


def test_each_cell_sees_the_rows_its_geometry_says():
    """Cell i of `simple`'s map depends on image rows 9i .. 9i + 22 only: centre 9i + 11."""
    model, size = simple(96), 96
    geometry = MapGeometry.of(model, size)
    assert (geometry.channels, geometry.side, geometry.stride, geometry.centre) == (32, 9, 9, 11)
    image = torch.rand(1, 3, size, size, requires_grad=True)
    for i in (0, 4, 8):
        (gradient,) = torch.autograd.grad(model.backbone.feature_map(image)[0, :, i, i].sum(), [image])
        rows = gradient.abs().sum((0, 1, 3)).nonzero().flatten()
        low, high = geometry.centre + geometry.stride * i - 11, geometry.centre + geometry.stride * i + 11
        assert int(rows.min()) >= low and int(rows.max()) <= high


def test_a_known_local_linear_map_is_recovered_exactly():
    """Targets built by the decoder's own form (mean + blocks linear in the cells around) come back to float precision.

    The blocks tile this image with none outside it (edge blocks that cross the border are
    fitted with the mean image outside, see :func:`blocks`)."""
    geometry = MapGeometry(channels=3, side=10, stride=4, centre=2, image_size=40)
    assert geometry.layout() == (0, 0, 0)
    generator = torch.Generator().manual_seed(0)
    embedded = torch.rand(40, geometry.features, generator=generator)
    truth = torch.randn(design(embedded[:1], geometry, 5).shape[1], 16, generator=generator) * 0.1
    mean = torch.rand(40 * 40, generator=generator)
    targets = mean + assemble(design(embedded, geometry, 5) @ truth, 40, geometry, 1)
    halves = NormalEquations.of(embedded[:20], targets[:20], geometry, 1) + NormalEquations.of(embedded[20:], targets[20:],
                                                                                               geometry, 1)
    decoder = halves.decoder(mean, ridge=1e-9)
    fresh = torch.rand(3, geometry.features, generator=generator)
    expected = mean + assemble(design(fresh, geometry, 5) @ truth, 3, geometry, 1)
    assert torch.allclose(decoder.predict(fresh), expected, atol=1e-3)


def test_the_decoder_beats_the_mean_image_on_unseen_slices(server, mri):
    model, size = simple(128), 128
    geometry = MapGeometry.of(model, size)
    assert geometry.local
    train = server(size)
    images, _ = mri(6, size=size, seed=3)
    with torch.no_grad():
        embedded = _embed(torch.flatten(model.backbone(train), 1))
        held = _embed(torch.flatten(model.backbone(images), 1))
    grey = train[:, :1].flatten(1)
    decoder = NormalEquations.of(embedded, grey, geometry, 1).decoder(grey.mean(0), ridge=1e-3)
    guesses = decoder.predict(held).view(-1, 1, size, size).clamp(0, 1)
    mean = train.mean(0)
    gains = [psnr(g.expand(3, -1, -1), image) - psnr(mean, image) for g, image in zip(guesses, images)]
    assert sum(gains) / len(gains) > DECODER_FLOOR_DB, gains


def test_the_posterior_only_takes_the_decoder_where_it_helps_out_of_fold(server, monkeypatch):
    """Weight 0 is among the choices, so the out-of-fold gain with a decoder is never below the one without."""
    monkeypatch.setattr(posterior_module, "MAX_COPIES", 1)  # keep the fit small: 128 anchors
    model, size = simple(112), 112  # the smallest size with a local map (10 x 10 cells)
    train = server(size)[:64]

    def features_of(x):
        return torch.flatten(model.backbone(x), 1)

    without = FeaturePosterior.fit(train, features_of, "cpu", seed=0)
    with_decoder = FeaturePosterior.fit(train, features_of, "cpu", seed=0, geometry=MapGeometry.of(model, size))
    assert "local_decoder" in with_decoder.describe() and "local_decoder" not in without.describe()
    assert with_decoder.validation_gain_db >= without.validation_gain_db - 1e-9
    assert torch.equal(with_decoder.weights, without.weights)  # the kernel regression itself is unchanged
    at_64 = MapGeometry.of(simple(64), 64)
    assert not at_64.local  # 5 x 5 cells: no decoder (one more global regression)
