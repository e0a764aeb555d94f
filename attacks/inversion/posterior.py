"""The server's best guess of an image from a layer input it recovered exactly, learned on its own images.

Once a layer's input comes back exactly (fc's input at batch 1 for the full model,
``shared``'s input for the shared layer), what is left is inference: which image gave those
features? Under PSNR the best answer is the posterior mean ``E[image | features]``, and the
server can estimate it without any client data: it pushes its own images (mirrored, shifted,
contrast-scaled copies too) through the model it knows and regresses image on features.
Learned inversions of this kind are the strongest published attackers with auxiliary data
(Dosovitskiy & Brox 2016 invert CNN features with a trained decoder; Wu et al. 2023,
"Learning to Invert", train on the attacker's own data). Here the regressor is kernel ridge
regression with a Gaussian kernel on the square roots of the features: closed form,
deterministic, seconds on a CPU, and far from a mean image only where the features say so
(far from every anchor it returns the server's mean image, so noisy features under DP fall
back to the null guess). Measured at 64x64 (20 held-out MRI slices, 256 server images):
23.5 dB against 22.1 dB for the layer-wise search and 18.5 dB for the mean image; a small
CNN decoder trained for 150 s reached 20.7 dB.

Where the features are a spatial map with many cells (``simple``'s fc input from 112x112 up),
a translation-equivariant local decoder (:mod:`attacks.inversion.local_decoder`) learns from
every cell of every image, and the guess averages the two, with the decoder's weight and
ridge chosen on the same two halves. Measured at 224x224 (24 held-out slices, 1,176 server
images, true fc inputs): mean image 17.13 dB, kernel regression 22.76 dB, local decoder
22.67 dB, their even average 23.61 dB. From 128 server images up a small convolutional network
is trained on what the local decoder misses (:mod:`attacks.inversion.conv_decoder`; three from
different seeds, averaged) and, if it beats it on held-out server images, replaces it in the
guess: held out at 224x224, +5.57 -> +8.11 dB over the mean image with one network.

The regression's residuals, measured out of fold on the server's own images, are the part
the features leave open; their principal components (:meth:`FeaturePosterior.residual_subspace`)
are where the gradient-matching searches look next, centred on the guess
(a conditional prior in place of the unconditional one of :class:`ImageSubspace`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from attacks.inversion.conv_decoder import ConvDecoder, DecoderEnsemble
from attacks.inversion.local_decoder import RIDGES as LOCAL_RIDGES
from attacks.inversion.local_decoder import LocalDecoder, MapGeometry, NormalEquations
from attacks.inversion.priors import ImageSubspace
from attacks.inversion.subspace import SubspaceImages

#: augmented copies per server image, capped so the regression's targets stay under this many values
#: and the anchors under MAX_ANCHORS (the kernel's eigendecomposition is cubic in them)
TARGET_VALUES = 1.5e8
MAX_ANCHORS = 8192
MAX_COPIES = 15
#: kernel widths (relative to the mean squared anchor distance) and ridges tried out of fold
GAMMAS = (0.5, 1.0, 2.0)
RIDGES = (0.01, 0.03, 0.1, 0.3)
#: anchors and pixels the choice of kernel width and ridge looks at, per fold
SELECT_ANCHORS = 2048
SELECT_PIXELS = 1024
#: Weight of the guess in the returned image. The posterior mean and the search's result err
#: differently (one is blurred towards what the server's images share, the other is pulled by
#: gradients towards one consistent image), so their average is closer than either: measured
#: at 64x64 on 16 slices disjoint from bench/inversion.py's (256 server images), weight 0 /
#: 0.25 / 0.5 / 0.75 / 1: layerwise 22.66 / 22.99 / 23.09 / 22.93 / 22.55 dB, shared-subspace
#: 21.92 / 22.31 / 22.48 / 22.38 / 22.06 dB.
POSTERIOR_BLEND = 0.5
#: The weight where the guess includes the convolutional decoder, which leaves the searches
#: less to add: measured at 224x224 (8 slices outside bench/inversion.py's, 1,176 server
#: images) the guess alone 25.97 dB, the layerwise search's result 25.02 dB, and weight 0.25 /
#: 0.5 / 0.65 / 0.8 gave 25.69 / 26.12 / 26.22 / 26.19 dB. With three networks the guess is
#: better and gets more weight: on 16 other slices (order[-64:-48] of bench/inversion.py's order)
#: weight 0.6 / 0.65 / 0.7 / 0.75 / 0.8 / 0.9 gave +9.00 / +9.05 / +9.08 / +9.10 / +9.10 / +9.06 dB.
CONV_POSTERIOR_BLEND = 0.75
#: weights of the local decoder in the guess tried out of fold (the rest: the kernel regression)
LOCAL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: the convolutional decoder (:mod:`attacks.inversion.conv_decoder`): trained from this many server
#: images up, on all but a held-out share of them, on which its weight in the guess (the rest:
#: the kernel regression) is chosen
CONV_MIN_IMAGES = 128
CONV_HOLDOUT = 0.1
CONV_WEIGHTS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0)
#: networks trained (seeds seed, seed + 1, ...) and averaged (:class:`attacks.inversion.conv_decoder.DecoderEnsemble`):
#: held out at 224x224 the mean of 1 / 2 / 3 / 4 gained +8.10 / +8.29 / +8.35 / +8.37 dB; a fourth
#: adds 0.02 dB for another ~5.5 minutes of every 224x224 attack on 2 CPU cores
CONV_NETWORKS = 3
#: fewer server images than this: no posterior (the attacks fall back to the plain subspace)
MIN_IMAGES = 32
#: features per forward pass when embedding the server's images
CHUNK = 64


def augmented(images: torch.Tensor, copies: int, generator: torch.Generator) -> torch.Tensor:
    """The images plus ``copies`` randomly mirrored, shifted (+-4 px) and contrast-scaled (0.8-1.2) versions."""
    out = [images]
    for _ in range(copies):
        copy = images.clone()
        mirror = torch.rand(len(copy), generator=generator) < 0.5
        copy[mirror] = copy[mirror].flip(-1)
        dy, dx = torch.randint(-4, 5, (2,), generator=generator).tolist()
        copy = torch.roll(copy, (dy, dx), (-2, -1))
        scale = 0.8 + 0.4 * torch.rand(len(copy), 1, 1, 1, generator=generator)
        out.append((copy * scale).clamp(0, 1))
    return torch.cat(out)


def _embed(features: torch.Tensor) -> torch.Tensor:
    """Square roots compress the heavy right tail of ReLU features (measured: +0.2 dB over raw features)."""
    return features.detach().double().flatten(1).clamp(min=0).sqrt().cpu()


@dataclass
class FeaturePosterior:
    """``guess(features) = mean + k(features, anchors) @ weights``: kernel ridge regression of image on features."""

    anchors: torch.Tensor  # M x F, embedded features of the (augmented) server images
    weights: torch.Tensor  # M x D
    mean: torch.Tensor  # D
    distance_scale: float
    gamma: float
    ridge: float
    shape: tuple[int, int, int]  # C x S x S of the guesses
    residuals: torch.Tensor  # out-of-fold residuals of the server's images, N x D
    validation_gain_db: float  # out-of-fold PSNR of the guess minus that of the mean image
    residual_subspaces: dict = field(default_factory=dict, repr=False, compare=False)  # per rank, fitted once
    #: where the features are a spatial map: the local decoder (:mod:`attacks.inversion.local_decoder`)
    #: and its weight in the guess, chosen out of fold
    local: LocalDecoder | None = None
    local_weight: float = 0.0
    #: where kept, the convolutional decoder (it contains the local one and replaces it in the
    #: guess) and its weight; where trained, kept or not, what was trained and its PSNR gain over
    #: the mean image on the held-out server images, with and without it
    conv: DecoderEnsemble | None = None
    conv_weight: float = 0.0
    conv_holdout: dict | None = None

    def describe(self) -> dict:
        described = {"anchors": int(self.anchors.shape[0]), "gamma": self.gamma, "ridge": self.ridge,
                     "validation_gain_db": round(self.validation_gain_db, 2)}
        if self.local is not None:
            described["local_decoder"] = {"neighbourhood": self.local.neighbourhood, "ridge": self.local.ridge,
                                          "weight": self.local_weight}
        if self.conv_holdout is not None:  # a dropped network is reported too: its absence is a result
            described["conv_decoder"] = {**self.conv_holdout, "kept": self.conv is not None, "weight": self.conv_weight}
        return described

    def guess(self, features: torch.Tensor) -> torch.Tensor:
        """N x C x S x S posterior-mean images (not clamped) for N recovered feature vectors."""
        embedded = _embed(features)
        flat = self.mean + _kernel(embedded, self.anchors, self.distance_scale, self.gamma) @ self.weights
        if self.conv is not None:
            flat = torch.lerp(flat, self.conv.predict(embedded), self.conv_weight)
        elif self.local is not None and self.local_weight > 0:
            flat = (1 - self.local_weight) * flat + self.local_weight * self.local.predict(embedded).double()
        return flat.float().view(-1, *self.shape).to(features.device)

    def residual_subspace(self, rank: int = 512) -> ImageSubspace:
        """Principal components of what the guess misses; centre it on a guess with ``images(c, centre=...)``."""
        if rank not in self.residual_subspaces:
            residuals = self.residuals.float().view(-1, *self.shape)
            self.residual_subspaces[rank] = ImageSubspace._fit(torch.cat([residuals, residuals.flip(-1)]), rank)
        return self.residual_subspaces[rank]

    @classmethod
    @torch.no_grad()
    def fit(cls, images: torch.Tensor, features_of: Callable[[torch.Tensor], torch.Tensor], device,
            greyscale: bool = True, seed: int = 0, geometry: MapGeometry | None = None) -> FeaturePosterior | None:
        """Fit on the server's images (N x C x S x S in [0, 1]); None below :data:`MIN_IMAGES` images.

        The kernel width and ridge are chosen on two halves of the server's images (each half
        predicts the other), which also gives the out-of-fold residuals. With ``geometry`` (the
        features are that spatial map) a local decoder is fitted too, and its ridge and weight
        in the guess are chosen on the same halves.
        """
        images = images.float().cpu()
        if images.shape[0] < MIN_IMAGES:
            return None
        generator = torch.Generator().manual_seed(seed)
        targets_of = (lambda x: x[:, :1]) if greyscale else (lambda x: x)
        values = targets_of(images[:1]).numel()
        copies = int(max(0, min(MAX_COPIES, TARGET_VALUES // (images.shape[0] * values) - 1,
                                 MAX_ANCHORS // images.shape[0] - 1)))

        def embedded(batch: torch.Tensor) -> torch.Tensor:
            return torch.cat([_embed(features_of(chunk.to(device))) for chunk in batch.split(CHUNK)])

        # each half with its augmented copies (originals first) is embedded once: it is one
        # fold's training set, the other fold's held-out set (its originals) and half the final fit
        half = images.shape[0] // 2
        parts = [augmented(images[:half], copies, generator), augmented(images[half:], copies, generator)]
        embedded_parts = [embedded(part) for part in parts]
        target_parts = [targets_of(part).flatten(1).double() for part in parts]
        originals = (half, images.shape[0] - half)
        fold_data = [(embedded_parts[a], target_parts[a], embedded_parts[b][: originals[b]], target_parts[b][: originals[b]])
                     for a, b in ((0, 1), (1, 0))]
        scale = float(torch.cdist(embedded_parts[0][:512], embedded_parts[0][:512]).pow(2).mean().clamp(min=1e-12))

        _, gamma, ridge = _select(fold_data, scale, generator)

        guesses, truths, mean_error = [], [], 0.0
        for anchors, targets, held, truth in fold_data:
            weights = _solve(anchors, targets, scale, gamma, ridge)
            guesses.append(targets.mean(0) + _kernel(held, anchors, scale, gamma) @ weights)
            truths.append(truth)
            mean_error += float((targets.mean(0) - truth).pow(2).mean())

        shape = tuple(targets_of(images[:1]).shape[1:])
        local, local_weight, conv, conv_weight, conv_holdout = None, 0.0, None, 0.0, None
        if geometry is not None and geometry.local:
            equations = [NormalEquations.of(e, t, geometry, shape[0]) for e, t in zip(embedded_parts, target_parts)]
            kernel_guesses = guesses
            local_ridge, local_weight, guesses = _select_local(equations, fold_data, guesses)
            local = (equations[0] + equations[1]).decoder(torch.cat(target_parts).mean(0), local_ridge)
            if images.shape[0] >= CONV_MIN_IMAGES:
                fold_local = equations[0].decoder(target_parts[0].mean(0), local_ridge)
                conv, conv_weight, conv_holdout = _fit_conv(local, fold_local, embedded_parts, target_parts, originals[1],
                                                            kernel_guesses[0], fold_data[0][3], device, seed)

        guess_error = sum(_mse(guess, truth) for guess, truth in zip(guesses, truths))
        gain = 10 * torch.log10(torch.tensor(mean_error / max(guess_error, 1e-20))).item()
        residuals = torch.cat([truth - guess for guess, truth in zip(guesses, truths)])

        anchors, targets = torch.cat(embedded_parts), torch.cat(target_parts)
        weights = _solve(anchors, targets, scale, gamma, ridge)
        return cls(anchors, weights, targets.mean(0), scale, gamma, ridge, shape, residuals, gain,
                   local=local, local_weight=local_weight, conv=conv, conv_weight=conv_weight, conv_holdout=conv_holdout)


def _fit_conv(local: LocalDecoder, fold_local: LocalDecoder, embedded_parts, target_parts, originals: int,
              kernel_guesses: torch.Tensor, truth: torch.Tensor, device, seed: int, networks: int | None = None,
              **train_options):
    """(decoder or None, weight, held-out scores): the convolutional decoder, kept only if it beats the local one held out.

    The network is trained on every server image but the last :data:`CONV_HOLDOUT` share of
    the second half's originals (and their augmented copies). On those, both decoders are
    averaged with the kernel regression at each of :data:`CONV_WEIGHTS`, each side predicting
    out of fold (the kernel regression and the linear decoder under the network fitted on the
    first half alone); the network is kept only if its best beats the linear decoder's best.
    ``networks`` networks are trained alike from seeds ``seed``, ``seed + 1``, ... and averaged
    (:class:`attacks.inversion.conv_decoder.DecoderEnsemble`; None: :data:`CONV_NETWORKS`).
    ``train_options`` go to :meth:`ConvDecoder.train` (bench/conv_decoder.py compares schedules).
    """
    copies = len(embedded_parts[1]) // originals
    held = torch.arange(originals - max(8, int(CONV_HOLDOUT * 2 * originals)), originals)
    rows = (held[None, :] + originals * torch.arange(copies)[:, None]).flatten()
    keep = torch.ones(len(embedded_parts[1]), dtype=torch.bool)
    keep[rows] = False
    embedded = torch.cat([embedded_parts[0], embedded_parts[1][keep]])
    targets = torch.cat([target_parts[0], target_parts[1][keep]])
    seeds = [seed + i for i in range(CONV_NETWORKS if networks is None else networks)]
    conv = DecoderEnsemble([ConvDecoder.train(local, embedded, targets, device, seed=s, **train_options) for s in seeds], seeds)
    truth, kernel_guesses = truth[held], kernel_guesses[held]

    def best(guesses: torch.Tensor) -> tuple[float, float]:
        return min((_mse(torch.lerp(kernel_guesses, guesses, w), truth), w) for w in CONV_WEIGHTS)

    held_features = embedded_parts[1][held]
    linear = fold_local.predict(held_features).double()
    residuals = [member.residual(held_features) for member in conv.members]
    # the mean of the first k networks, k = 1 .. all: whether more of them would still help
    errors = [best(linear + torch.stack(residuals[:k]).mean(0)) for k in range(1, len(residuals) + 1)]
    error, weight = errors[-1]
    before, _ = best(linear)
    mean_error = float((targets.mean(0) - truth).pow(2).mean())
    def gain_db(mse: float) -> float | None:  # None where a diverged network's error is NaN: JSON has no NaN
        return round(10 * math.log10(mean_error / max(mse, 1e-20)), 2) if math.isfinite(mse) else None

    scores = {**conv.describe(), "held_out": len(held), "held_out_gain_db": gain_db(error),
              "held_out_gain_db_without": gain_db(before),
              "held_out_gain_db_by_networks": [gain_db(e) for e, _ in errors]}
    if not error < before:  # a tie (an untrained network) or NaN (a diverged one) is dropped
        return None, 0.0, scores
    return conv, weight, scores


def _select_local(equations: list[NormalEquations], fold_data, kernel_guesses: list[torch.Tensor]):
    """(ridge, weight, each fold's combined guesses) of the local decoder, each half predicting the other."""
    best = None
    for ridge in LOCAL_RIDGES:
        local_guesses = [equations[a].decoder(targets.mean(0), ridge).predict(held).double()
                         for a, (_, targets, held, _) in enumerate(fold_data)]
        for weight in LOCAL_WEIGHTS:
            error = sum(_mse(torch.lerp(k, g, weight), truth)
                        for k, g, (*_, truth) in zip(kernel_guesses, local_guesses, fold_data))
            if best is None or error < best[0]:
                best = (error, ridge, weight, local_guesses)
    _, ridge, weight, local_guesses = best
    return ridge, weight, [torch.lerp(k, g, weight) for k, g in zip(kernel_guesses, local_guesses)]


def _mse(guess: torch.Tensor, truth: torch.Tensor, chunk: int = 64) -> float:
    """Mean squared error of the clamped guess, a few rows at a time (guesses at 224x224 are 400 MB)."""
    total = sum(float((g.clamp(0, 1) - t).pow(2).sum()) for g, t in zip(guess.split(chunk), truth.split(chunk)))
    return total / truth.numel()


def _select(fold_data, scale: float, generator: torch.Generator) -> tuple[float, float, float]:
    """(held-out MSE, gamma, ridge) of the best pair, each fold predicting the other.

    On at most SELECT_ANCHORS anchors and SELECT_PIXELS random pixels per fold: the MSE over
    random pixels is an unbiased estimate of the whole image's, and the choice needs no more.
    """
    best = None
    for gamma in GAMMAS:
        errors = torch.zeros(len(RIDGES), dtype=torch.float64)
        for anchors, targets, held, truth in fold_data:
            keep = torch.randperm(len(anchors), generator=generator)[:SELECT_ANCHORS]
            pixels = torch.randperm(targets.shape[1], generator=generator)[:SELECT_PIXELS]
            anchors, targets, truth = anchors[keep], targets[keep][:, pixels], truth[:, pixels]
            eigenvalues, vectors = torch.linalg.eigh(_kernel(anchors, anchors, scale, gamma))
            centred = vectors.t() @ (targets - targets.mean(0))
            cross = _kernel(held, anchors, scale, gamma) @ vectors
            for i, ridge in enumerate(RIDGES):
                guess = targets.mean(0) + cross @ (centred / (eigenvalues + ridge)[:, None])
                errors[i] += (guess.clamp(0, 1) - truth).pow(2).mean()
        i = int(errors.argmin())
        if best is None or errors[i] < best[0]:
            best = (float(errors[i]), gamma, RIDGES[i])
    return best


def _kernel(a: torch.Tensor, b: torch.Tensor, scale: float, gamma: float) -> torch.Tensor:
    return torch.exp(-gamma * torch.cdist(a.to(b), b).pow(2) / scale)


def _solve(anchors: torch.Tensor, targets: torch.Tensor, scale: float, gamma: float, ridge: float) -> torch.Tensor:
    """Kernel ridge weights for targets centred on their mean."""
    kernel = _kernel(anchors, anchors, scale, gamma)
    kernel.diagonal().add_(ridge)
    return torch.linalg.solve(kernel, targets - targets.mean(0))


def posterior_for(prior, layer: str, features_of: Callable[[torch.Tensor], torch.Tensor], device,
                  seed: int = 0, geometry: MapGeometry | None = None) -> FeaturePosterior | None:
    """The posterior of ``layer``'s input fitted on ``prior.server_images``, once per prior (it is per attacked model)."""
    if layer not in prior.posteriors:
        server = prior.server_images
        prior.posteriors[layer] = None if server is None else FeaturePosterior.fit(
            server.expand(-1, 3, -1, -1) if prior.greyscale else server, features_of, device,
            greyscale=prior.greyscale, seed=seed, geometry=geometry)
    return prior.posteriors[layer]


def search_start(observation, layer: str, features_of: Callable[[torch.Tensor], torch.Tensor], features: torch.Tensor,
                 blend: float = POSTERIOR_BLEND, geometry: MapGeometry | None = None) -> tuple[SubspaceImages, dict | None]:
    """Where a subspace search starts: around the posterior-mean guess of ``features`` when there is one.

    Returns the candidate images and the ``posterior`` statistics (None: the plain subspace of
    the server's images), whose ``blend`` is the weight of the guess in the returned image:
    ``blend``, or :data:`CONV_POSTERIOR_BLEND` where the guess includes the convolutional
    decoder. The posterior is learned for one image's features, so an observed round (whose
    ratio mixes many images over many steps) always gets the plain subspace.
    """
    prior = observation.prior
    posterior = (posterior_for(prior, layer, features_of, observation.device, geometry=geometry)
                 if observation.one_gradient_step else None)
    if posterior is None:
        return SubspaceImages(observation.num_images, prior, prior.subspace, observation.device), None
    low, high = prior.value_range
    candidate = SubspaceImages(observation.num_images, prior, posterior.residual_subspace(), observation.device,
                               centre=posterior.guess(features).clamp(low, high))
    return candidate, {**posterior.describe(), "blend": CONV_POSTERIOR_BLEND if posterior.conv is not None else blend}


def blend_with_guess(images: torch.Tensor, candidate: SubspaceImages, weight: float) -> torch.Tensor:
    """``(1 - weight) * images + weight * guess`` when the search started at a guess; else ``images``."""
    if candidate.centre is None:
        return images
    return (1 - weight) * images + weight * candidate.centre.to(images).expand_as(images)
