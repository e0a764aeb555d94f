"""The attacker's image priors come from the server's own images, never from "MRI is grey"."""

from __future__ import annotations

import torch

from attacks.inversion.priors import Candidate, ImagePrior
from privfed.data import open_dataset


def test_grey_server_images_give_a_grey_prior_and_colour_ones_a_colour_prior():
    grey, _ = open_dataset("embedded", 32).load(open_dataset("embedded", 32).ids[:8])  # MRI stored as RGB
    prior = ImagePrior.from_server_images(grey)
    assert prior.greyscale and prior.fitted()["channels"] == 1
    colour = grey.clone()
    colour[:, 0] = colour[:, 0] * 0.5  # a red cast: the channels differ
    prior = ImagePrior.from_server_images(colour)
    assert not prior.greyscale and prior.fitted()["channels"] == 3 and "greyscale" not in prior.names()
    candidate = Candidate(2, 32, prior, torch.Generator().manual_seed(0), "cpu")
    assert candidate().shape == (2, 3, 32, 32) and candidate.pixels.shape[1] == 3


def test_the_box_is_the_server_images_value_range():
    images = 0.2 + 0.5 * torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    prior = ImagePrior.from_server_images(images)
    low, high = prior.value_range
    assert low == float(images.min()) and high == float(images.max()) and 0.2 <= low < high <= 0.7
    candidate = Candidate(1, 16, prior, torch.Generator().manual_seed(0), "cpu")
    with torch.no_grad():
        candidate.pixels.fill_(5.0)
    candidate.project()
    assert float(candidate().detach().max()) == high and prior.fitted()["value_range"] == [low, high]
