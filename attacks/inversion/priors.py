"""Priors an honest-but-curious server really has, shared by every optimisation attack.

Every prior is an assumption about the data, so each is *fitted on the server's own images*
(:meth:`ImagePrior.from_server_images`), never hard-coded: a server holding colour images
gets a colour prior. ``fitted`` records what was fitted (``prior_fit`` in the result JSON).

* ``greyscale``: when the server's images have equal channels (MRI slices stored as RGB), we
  optimise one channel and repeat it three times: a third of the unknowns, and no colour
  artefacts. Colour data keeps three channels. "Equal" allows a few exceptions
  (:data:`GREYSCALE_SHARE`): 45 of the 5,538 brain-MRI slices carry a colour cast (JPEG
  chroma, annotations), so every 830-image server set holds some, and demanding all of them
  equal made the server treat an MRI collection as colour data: three times the unknowns and
  a third of the posterior's augmented copies at 224x224. The exceptions enter the greyscale
  fits as the mean of their channels.
* ``box``: pixels lie in the value range of the server's images; candidates are projected
  back after every step, as in Inverting Gradients (Geiping et al. 2020,
  https://arxiv.org/abs/2003.14053).
* ``server-mean-init``: start from the mean of the server's own images instead of noise.
* ``server-feature-stats``: a Gaussian prior on the features the attacker's backbone
  computes, fitted on the server's images (in the spirit of the BatchNorm-statistics prior of
  Yin et al. 2021, "See through Gradients", https://arxiv.org/abs/2104.07586).
* ``tv``: total variation, the image prior of Inverting Gradients.
* ``server-subspace``: the principal components of the server's images
  (:class:`ImageSubspace`), a linear generative prior in the spirit of GIAS (Jeon et al.
  2021, https://arxiv.org/abs/2110.14962), which searches a generator's latent space fitted
  on public data instead of pixel space. Mirror images are added only when they help to
  reconstruct held-out server images (:meth:`ImageSubspace.fit`).
* ``server-posterior``: the server's images themselves (``server_images``), from which an
  attack that recovered a layer's input exactly learns the posterior mean image given it
  under the attacked model (:mod:`attacks.inversion.posterior`).

Each result lists the prior names it used (``priors`` in the result JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


#: share of the server's images whose channels must be equal for the data to count as greyscale
GREYSCALE_SHARE = 0.95


def greyscale_share(images: torch.Tensor) -> float:
    """Share of N x C x S x S images whose channels are equal (to 1e-6)."""
    if images.shape[1] == 1 or images.shape[0] == 0:
        return 1.0
    return int(((images - images[:, :1]).flatten(1).abs().amax(1) <= 1e-6).sum()) / images.shape[0]


#: pixels per block when the subspace's Gram matrix is accumulated (memory, not the result)
PIXEL_BLOCK = 4096


@dataclass
class ImagePrior:
    greyscale: bool = True
    tv_weight: float = 1e-2
    value_range: tuple[float, float] = (0.0, 1.0)
    mean_image: torch.Tensor | None = None  # 3 x S x S in [0, 1]
    feature_mean: torch.Tensor | None = None  # statistics of model.shared_input on server images
    feature_std: torch.Tensor | None = None
    feature_weight: float = 1e-3
    mean_probs: torch.Tensor | None = None  # mean softmax of the attacker's model on server images (label counts)
    subspace: ImageSubspace | None = None  # principal components of the server's images
    server_images: torch.Tensor | None = None  # N x C x S x S (C = 1 for greyscale data), for learned posteriors
    #: posteriors fitted on ``server_images``, per layer (the prior is fitted per attacked model)
    posteriors: dict = field(default_factory=dict, repr=False, compare=False)

    def names(self, uses_tv: bool = True) -> list[str]:
        names = ["box"]
        if self.greyscale:
            names.append("greyscale")
        if uses_tv and self.tv_weight > 0:
            names.append("tv")
        if self.mean_image is not None:
            names.append("server-mean-init")
        if self.feature_mean is not None and self.feature_weight > 0:
            names.append("server-feature-stats")
        if self.subspace is not None:
            names.append("server-subspace")
        if self.server_images is not None:
            names.append("server-posterior")
        return names

    def fitted(self) -> dict:
        """What the priors assume about the data, for the result JSON (``prior_fit``)."""
        return {"channels": 1 if self.greyscale else 3, "value_range": [float(v) for v in self.value_range],
                "mean_image": self.mean_image is not None, "feature_statistics": self.feature_mean is not None,
                "subspace": self.subspace.describe() if self.subspace is not None else None,
                "posterior": {layer: fitted.describe() for layer, fitted in self.posteriors.items() if fitted is not None}
                or None}

    @classmethod
    @torch.no_grad()
    def from_server_images(cls, images: torch.Tensor, model: nn.Module | None = None, **kwargs) -> ImagePrior:
        """Fit the modality (channels, value range, mean image) and feature priors on the server's images.

        ``images``: N x C x S x S in [0, 1], the server's own data.
        """
        images = images.float()
        kwargs.setdefault("greyscale", greyscale_share(images) >= GREYSCALE_SHARE)
        kwargs.setdefault("value_range", (float(images.min()), float(images.max())))
        prior = cls(mean_image=images.mean(0).cpu(), **kwargs)
        grey = images.mean(1, keepdim=True) if prior.greyscale else images
        if prior.server_images is None:
            prior.server_images = grey.cpu()
        if prior.subspace is None and images.shape[0] >= ImageSubspace.min_images:
            prior.subspace = ImageSubspace.fit(grey)
        if model is not None and images.shape[0] >= 2:
            device = next(model.parameters()).device
            was_training = model.training
            model.eval()
            features = torch.cat([model.shared_input(chunk.to(device)).cpu() for chunk in images.split(32)])
            model.train(was_training)
            prior.feature_mean, prior.feature_std = features.mean(0), features.std(0)
            prior.mean_probs = torch.softmax(model.forward_from_shared_input(features.to(device)), 1).mean(0).cpu()
        return prior


_SUBSPACE_CACHE: dict = {}


@dataclass
class ImageSubspace:
    """``image = mean + (coefficients * scales) @ components``, fitted on the server's images.

    ``components`` (k x D, orthonormal rows) and ``scales`` (standard deviation of the server's
    images along each) come from an SVD of the server's images (C x S x S flattened, C = 1 for
    greyscale data). Coefficients are whitened, so a ridge penalty on them is the Gaussian
    prior the server's images imply. ``mirrored`` says whether left-right mirrored copies were
    added: only when the held-out half of the server's images is reconstructed better with
    them, so no symmetry is assumed of data that does not have it.
    """

    mean: torch.Tensor  # D
    components: torch.Tensor  # k x D
    scales: torch.Tensor  # k
    shape: tuple[int, int, int]  # C x S x S
    mirrored: bool
    fitted_on: int

    #: fewer server images than this give no useful subspace
    min_images = 8

    @property
    def rank(self) -> int:
        return int(self.components.shape[0])

    def describe(self) -> dict:
        return {"rank": self.rank, "mirrored": self.mirrored, "fitted_on": self.fitted_on}

    def images(self, coefficients: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
        """N x k whitened coefficients -> N x C x S x S images (not clamped).

        ``centre`` (N x C x S x S) replaces the subspace's mean per image: a residual subspace
        centred on each image's own guess (:mod:`attacks.inversion.posterior`).
        """
        offset = self.mean.to(coefficients) if centre is None else centre.flatten(1).to(coefficients)
        flat = offset + (coefficients * self.scales.to(coefficients)) @ self.components.to(coefficients)
        return flat.view(-1, *self.shape)

    def coefficients(self, images: torch.Tensor) -> torch.Tensor:
        """Whitened coefficients of the projection of ``images`` (N x C x S x S) onto the subspace."""
        flat = images.flatten(1).to(self.components) - self.mean
        return (flat @ self.components.t()) / self.scales.clamp(min=1e-8)

    @staticmethod
    def _svd(flat: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Principal components through the N x N Gram matrix (N images << D pixels: cheap).

        In float64, a block of pixels at a time: a float64 copy of 4,704 images at 224x224
        (a residual subspace with its mirror images) alone is 1.9 GB.
        """
        mean = flat.mean(0)
        blocks = range(0, flat.shape[1], PIXEL_BLOCK)

        def centred(start: int) -> torch.Tensor:
            return (flat[:, start : start + PIXEL_BLOCK] - mean[start : start + PIXEL_BLOCK]).double()

        gram = sum(block @ block.t() for block in map(centred, blocks))
        eigenvalues, vectors = torch.linalg.eigh(gram)
        eigenvalues, vectors = eigenvalues.flip(0).clamp(min=0), vectors.flip(1)
        keep = int((eigenvalues > eigenvalues[0] * 1e-10).sum()) if eigenvalues.numel() else 0
        rank = min(rank, keep)
        singular = eigenvalues[:rank].sqrt()
        weights = vectors[:, :rank].t() / singular[:, None]
        components = torch.cat([(weights @ centred(start)).float() for start in blocks], 1)
        return mean, components, (singular / max(flat.shape[0] - 1, 1) ** 0.5).float()

    @classmethod
    @torch.no_grad()
    def fit(cls, images: torch.Tensor, rank: int = 512) -> ImageSubspace:
        """Fit on N x C x S x S server images; decide on mirroring on a held-out half.

        The last fit is cached by a fingerprint of the images: the runner fits a prior per
        attacked (round, client, knowledge) on the same server images.
        """
        images = images.float().cpu()
        key = (tuple(images.shape), float(images.sum()), float((images * images).sum()), rank)
        if _SUBSPACE_CACHE.get("key") == key:
            return _SUBSPACE_CACHE["value"]
        value = cls._fit(images, rank)
        _SUBSPACE_CACHE.update(key=key, value=value)
        return value

    @classmethod
    def _fit(cls, images: torch.Tensor, rank: int) -> ImageSubspace:
        flat = images.flatten(1)
        half = images.shape[0] // 2

        def held_out_error(train: torch.Tensor) -> float:
            mean, comps, _ = cls._svd(train.flatten(1), rank)
            test = flat[half:] - mean
            return float((test - (test @ comps.t()) @ comps).pow(2).mean())

        mirrored = held_out_error(torch.cat([images[:half], images[:half].flip(-1)])) < held_out_error(images[:half])
        data = torch.cat([images, images.flip(-1)]) if mirrored else images
        mean, comps, scales = cls._svd(data.flatten(1), rank)
        return cls(mean, comps.contiguous(), scales, tuple(images.shape[1:]), mirrored, int(images.shape[0]))


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV (mean absolute difference of neighbouring pixels), per batch."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy


class Candidate(nn.Module):
    """The images being optimised, parametrised per the priors (grey channel, box projection).

    ``resolution`` > 1 optimises a ``S/resolution`` grid upsampled bilinearly to ``S``: a
    smoothness prior that removes the high-frequency null space of a conv + max-pool stack
    (pixels that no pooled maximum sees), which otherwise fills with salt-and-pepper noise.
    Bilinear upsampling of values in the box stays in the box, so box projection is unchanged.
    """

    def __init__(self, num: int, image_size: int, prior: ImagePrior, generator: torch.Generator, device,
                 resolution: int = 1, noise: float = 0.05) -> None:
        super().__init__()
        self.greyscale = prior.greyscale
        self.low, self.high = prior.value_range
        self.image_size = image_size
        side = max(image_size // max(int(resolution), 1), 2)
        self.side = side
        channels = 1 if prior.greyscale else 3
        if prior.mean_image is not None:
            start = prior.mean_image.to(device).float()
            start = start.mean(0, keepdim=True) if prior.greyscale else start
            start = start.expand(num, channels, image_size, image_size).clone()
            if side != image_size:
                start = F.adaptive_avg_pool2d(start, side)
            start = start + noise * torch.randn(start.shape, generator=generator).to(device)
        else:
            start = 0.5 + 0.1 * torch.randn((num, channels, side, side), generator=generator).to(device)
        self.pixels = nn.Parameter(start.clamp(self.low, self.high))

    def forward(self) -> torch.Tensor:
        images = self.pixels
        if self.side != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return images.expand(-1, 3, -1, -1) if self.greyscale else images

    @torch.no_grad()
    def project(self) -> None:
        self.pixels.clamp_(self.low, self.high)


def feature_prior_loss(features: torch.Tensor, prior: ImagePrior) -> torch.Tensor:
    """Negative log-likelihood (up to constants) of features under the server's feature statistics."""
    if prior.feature_mean is None or prior.feature_weight <= 0:
        return features.new_zeros(())
    mean = prior.feature_mean.to(features.device)
    std = prior.feature_std.to(features.device) + 1e-3
    return prior.feature_weight * (((features - mean) / std) ** 2).mean()
