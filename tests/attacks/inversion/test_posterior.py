"""The learned posterior mean on real brain-MRI slices from the embedded data (`simple` at 64x64)."""

from __future__ import annotations

import pytest
import torch

from attacks.inversion import ImagePrior
from attacks.inversion.posterior import MIN_IMAGES, FeaturePosterior, _kernel, _solve, augmented, posterior_for
from attacks.inversion.priors import ImageSubspace
from attacks.metrics import psnr
from privfed.models import build_model

#: measured +6.2 dB over the mean image on these six slices (128 server images, 2,048 anchors)
GUESS_FLOOR_DB = 3.0


@pytest.fixture(scope="module")
def fitted():
    from tests.attacks.inversion.conftest import server_images

    torch.manual_seed(0)
    model = build_model("simple", num_classes=2, image_size=64, shared_width=1024).eval()
    server = server_images(64)

    def features_of(x):
        return torch.flatten(model.backbone(x), 1)

    return model, server, features_of, FeaturePosterior.fit(server, features_of, "cpu", seed=0)


def test_the_guess_from_exact_features_beats_the_mean_image_on_unseen_slices(fitted, mri):
    model, server, features_of, posterior = fitted
    images, _ = mri(6, size=64, seed=3)
    with torch.no_grad():
        guesses = posterior.guess(features_of(images)).clamp(0, 1)
    mean = server.mean(0)
    gains = [psnr(guess.expand(3, -1, -1), image) - psnr(mean, image) for guess, image in zip(guesses, images)]
    assert sum(gains) / len(gains) > GUESS_FLOOR_DB, gains
    assert posterior.validation_gain_db > 1.0  # the server's own out-of-fold estimate agrees in sign and size
    assert posterior.shape == (1, 64, 64) and posterior.anchors.shape[0] == len(server) * 16


def test_features_far_from_every_anchor_give_the_mean_image(fitted):
    """Kernel ridge regression falls back to the targets' mean: what noisy (DP) features should get."""
    _, _, _, posterior = fitted
    far = torch.full((2, posterior.anchors.shape[1]), 1e4)
    guess = posterior.guess(far)
    assert torch.allclose(guess.flatten(1).double(), posterior.mean.expand(2, -1), atol=1e-9)


def test_kernel_ridge_weights_match_the_hand_computed_two_anchor_case():
    anchors = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    e = torch.exp(torch.tensor(-1.0, dtype=torch.float64))  # gamma 1, scale 1, squared distance 1
    weights = _solve(anchors, targets, scale=1.0, gamma=1.0, ridge=0.5)
    # (K + 0.5 I) w = y - 2 with K = [[1, e], [e, 1]]: w = [-1, 1] / (1.5 - e)
    assert torch.allclose(weights[:, 0], torch.tensor([-1.0, 1.0], dtype=torch.float64) / (1.5 - e))
    assert torch.allclose(_kernel(anchors, anchors, 1.0, 1.0)[0, 1], e)


def test_the_fit_is_deterministic_and_refuses_too_few_images(fitted):
    model, server, features_of, posterior = fitted
    again = FeaturePosterior.fit(server, features_of, "cpu", seed=0)
    assert torch.equal(again.weights, posterior.weights) and (again.gamma, again.ridge) == (posterior.gamma, posterior.ridge)
    assert FeaturePosterior.fit(server[: MIN_IMAGES - 1], features_of, "cpu") is None


def test_augmented_keeps_the_originals_first_and_stays_in_the_box(mri):
    images, _ = mri(4, size=32)
    out = augmented(images, 3, torch.Generator().manual_seed(0))
    assert out.shape == (16, *images.shape[1:]) and torch.equal(out[:4], images)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_a_residual_subspace_centred_on_each_guess_starts_at_the_guess(fitted):
    _, _, _, posterior = fitted
    subspace = posterior.residual_subspace(rank=64)
    assert isinstance(subspace, ImageSubspace) and subspace.rank <= 64
    centre = torch.rand(2, 1, 64, 64)
    at_zero = subspace.images(torch.zeros(2, subspace.rank), centre)
    assert torch.equal(at_zero, centre)
    moved = subspace.images(torch.eye(2, subspace.rank), centre)  # image n moves along component n from its own centre
    for n in range(2):
        step = (subspace.scales[n] * subspace.components[n]).view(1, 64, 64)
        assert torch.allclose(moved[n], centre[n] + step, atol=1e-6)


def test_the_prior_fits_one_posterior_per_layer_and_reports_it(fitted):
    model, server, features_of, _ = fitted
    prior = ImagePrior.from_server_images(server[:40], model)
    assert "server-posterior" in prior.names() and prior.server_images.shape[1] == 1
    first = posterior_for(prior, "fc", features_of, "cpu")
    assert posterior_for(prior, "fc", lambda x: 1 / 0, "cpu") is first  # cached: not fitted twice
    assert prior.fitted()["posterior"]["fc"]["anchors"] == first.anchors.shape[0]


def test_the_subspace_is_the_same_whether_its_gram_matrix_is_summed_in_pixel_blocks_or_at_once(monkeypatch, mri):
    """The blocks only bound memory (a float64 copy of a 224x224 residual set is 1.9 GB); the components must not move."""
    from attacks.inversion import priors

    images, _ = mri(12, size=32)
    flat = images[:, :1].flatten(1)
    monkeypatch.setattr(priors, "PIXEL_BLOCK", 10**9)
    mean, components, scales = ImageSubspace._svd(flat, rank=8)
    monkeypatch.setattr(priors, "PIXEL_BLOCK", 100)  # 1,024 pixels in 11 uneven blocks
    mean_b, components_b, scales_b = ImageSubspace._svd(flat, rank=8)
    assert torch.equal(mean, mean_b) and torch.allclose(scales, scales_b, rtol=1e-6)
    signs = (components * components_b).sum(1).sign()[:, None]  # eigenvectors are defined up to sign
    assert torch.allclose(components, signs * components_b, atol=1e-5)
    assert torch.allclose(components @ components.t(), torch.eye(8), atol=1e-4)  # orthonormal, as PCA's must be


def test_a_few_colour_cast_slices_do_not_make_an_mri_collection_colour_data(mri):
    """45 of 5,538 brain-MRI slices carry a colour cast: the server's prior must stay greyscale."""
    from attacks.inversion.priors import GREYSCALE_SHARE, greyscale_share

    images, _ = mri(40, size=32)
    images = images.clone()
    images[0, 0] = (images[0, 0] * 0.9).clamp(0, 1)  # one slice with a cast in its red channel
    assert greyscale_share(images) == 39 / 40 >= GREYSCALE_SHARE
    prior = ImagePrior.from_server_images(images)
    assert prior.greyscale and prior.server_images.shape[1] == 1
    assert torch.allclose(prior.server_images[0], images[0].mean(0, keepdim=True))  # the exception as its channel mean
    colour = images.clone()
    colour[:, 1] = colour[:, 1] * 0.5  # every slice tinted: colour data
    assert not ImagePrior.from_server_images(colour).greyscale
