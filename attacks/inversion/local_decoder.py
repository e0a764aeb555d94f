"""A translation-equivariant decoder of an image from a spatial feature map, fitted in closed form.

The fc input of a convolutional backbone (``simple``: 32 x 23 x 23 at 224x224) is a map whose
cell ``(i, j)`` sees only a window of the image around ``(centre + stride * i, centre + stride * j)``.
A global regression of the whole image on the whole map (the kernel posterior of
:mod:`attacks.inversion.posterior`) learns from N server images; a *local* one, the same
weights for every cell, learns from N x cells examples (622,000 at 224x224 with 1,176 server
images) and so can afford far more detail: the block of ``stride x stride`` pixels centred on a
cell is regressed linearly on the features of the ``k x k`` cells around it and their square
roots (a transposed convolution whose weights are the ridge solution: Dosovitskiy & Brox
2016's learned inversion with its decoder made linear). Measured at 224x224 (24 held-out MRI slices, 1,176 server
images, the true fc input): mean image 17.13 dB, the global kernel posterior 22.76 dB, this
decoder 22.67 dB (k = 5), their average 23.61 dB.

Only the normal equations depend on the data, so two folds' sums give the final fit for free.
Unlike the kernel regression, a linear decoder does not fall back to the mean image far from
the server's features: noisy (DP) features give a noisy guess, which the null attacks of the
report then beat, as they should.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: neighbourhood (k x k cells) each block is regressed on; relative ridges tried out of fold
NEIGHBOURHOOD = 5
RIDGES = (1e-5, 1e-4, 1e-3, 1e-2)
#: powers of the square-rooted features each cell contributes: sqrt(h) and h itself (measured at
#: 224x224: sqrt(h) alone 21.60 dB, with h 22.80 dB)
POWERS = (1, 2)
#: images per chunk when accumulating the normal equations (memory: chunk x cells x features)
CHUNK = 64


@dataclass(frozen=True)
class MapGeometry:
    """Where the cells of a ``channels x side x side`` feature map sit on a ``image_size`` image."""

    channels: int
    side: int
    stride: int  # pixels between neighbouring cells
    centre: int  # image row (and column) of the centre of cell (0, 0)'s receptive field
    image_size: int

    @classmethod
    @torch.no_grad()
    def of(cls, model, image_size: int) -> MapGeometry | None:
        """The geometry of ``model.backbone``'s output map; None when the backbone has none (pooled features)."""
        backbone = model.backbone
        if not all(hasattr(backbone, name) for name in ("feature_map", "map_stride", "map_centre")):
            return None
        probe = next(backbone.parameters())
        shape = backbone.feature_map(torch.zeros(1, 3, image_size, image_size, device=probe.device, dtype=probe.dtype)).shape
        return cls(int(shape[1]), int(shape[2]), int(backbone.map_stride), int(backbone.map_centre), image_size)

    @property
    def features(self) -> int:
        return self.channels * self.side * self.side

    @property
    def local(self) -> bool:
        """Whether a neighbourhood is small against the map. Where it is not (``simple`` at 64x64:
        5 x 5 cells), the decoder is one more global linear regression, which the kernel
        regression already beats: measured at 64x64 (128 server images, 16 slices) +4.65 dB
        without it, +4.66 dB with it, at three times the fitting time."""
        return self.side >= 2 * NEIGHBOURHOOD

    @property
    def grid(self) -> int:
        """Cells per side of the padded grid whose blocks tile the image."""
        before, after, _ = self.layout()
        return self.side + before + after

    def layout(self) -> tuple[int, int, int]:
        """(cells added before the map, cells added after it, image rows padded on top) so blocks tile the image."""
        first = self.centre - self.stride // 2  # first row of cell 0's block
        before = -(-first // self.stride)
        after = max(0, -(-(self.image_size - first) // self.stride) - self.side)
        return before, after, before * self.stride - first


@dataclass
class LocalDecoder:
    """``image = mean + fold(blocks)``, each block linear in the features (and their square roots) of the cells around it."""

    geometry: MapGeometry
    neighbourhood: int
    weights: torch.Tensor  # (C * k * k + 1) x (image channels * stride^2)
    mean: torch.Tensor  # D, flattened image channels x S x S
    ridge: float
    image_channels: int

    def predict(self, embedded: torch.Tensor) -> torch.Tensor:
        """N x D images (flattened, not clamped) from N x F embedded (square-rooted) features."""
        out = []
        for chunk in embedded.split(CHUNK):
            rows = design(chunk.to(self.weights), self.geometry, self.neighbourhood)
            out.append(assemble(rows @ self.weights, len(chunk), self.geometry, self.image_channels))
        return self.mean.to(self.weights) + torch.cat(out)


def cell_maps(embedded: torch.Tensor, geometry: MapGeometry, margin: int = 0) -> torch.Tensor:
    """N x (C * powers) x side' x side': each cell's features to each of :data:`POWERS`, zero on the
    cells padded around the map to make the grid whose blocks tile the image, and ``margin`` more."""
    before, after, _ = geometry.layout()
    maps = embedded.reshape(-1, geometry.channels, geometry.side, geometry.side)
    maps = torch.cat([maps**power for power in POWERS], 1)
    return F.pad(maps, (margin + before, margin + after, margin + before, margin + after))


def design(embedded: torch.Tensor, geometry: MapGeometry, neighbourhood: int) -> torch.Tensor:
    """One row per (image, cell of the padded grid): the k x k cells around it, then a 1."""
    columns = F.unfold(cell_maps(embedded, geometry, neighbourhood // 2), neighbourhood)  # N x (C k k) x cells
    rows = columns.transpose(1, 2).reshape(-1, columns.shape[1])
    return torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype, device=rows.device)], 1)


def blocks(images: torch.Tensor, geometry: MapGeometry, image_channels: int) -> torch.Tensor:
    """One row per (image, cell of the padded grid): its stride x stride block (zero outside the image).

    Blocks of the outermost cells may cross the border (``simple`` at 224x224: the top 2 and
    bottom 8 of 234 rows); the pixels outside are fitted as the mean image (zero, centred),
    which biases those cells' weights slightly towards it. Exact masking would need one
    system per phase; on MRI the border is background, where the mean image is right."""
    top = geometry.layout()[2]
    span, size = geometry.grid * geometry.stride, geometry.image_size
    padded = F.pad(images.reshape(-1, image_channels, size, size), (top, span - size - top, top, span - size - top))
    columns = F.unfold(padded, geometry.stride, stride=geometry.stride)  # N x (c s s) x cells
    return columns.transpose(1, 2).reshape(-1, columns.shape[1])


def assemble(rows: torch.Tensor, n: int, geometry: MapGeometry, image_channels: int) -> torch.Tensor:
    """The inverse of :func:`blocks`: N x D flattened images."""
    top = geometry.layout()[2]
    span, size = geometry.grid * geometry.stride, geometry.image_size
    columns = rows.reshape(n, geometry.grid**2, -1).transpose(1, 2)
    padded = F.fold(columns, (span, span), geometry.stride, stride=geometry.stride)
    return padded[:, :, top : top + size, top : top + size].reshape(n, -1)


@dataclass
class NormalEquations:
    """Sums over (image, cell) rows: X^T X, X^T Y for uncentred targets, and each cell's sum of X.

    The per-cell sums let :meth:`decoder` subtract any mean image afterwards, so two folds'
    sums add up to the final fit's exactly, whatever mean each is centred on.
    """

    xtx: torch.Tensor  # P x P
    xty: torch.Tensor  # P x (c s s)
    cell_sums: torch.Tensor  # cells x P
    geometry: MapGeometry
    image_channels: int
    neighbourhood: int

    @classmethod
    def of(cls, embedded: torch.Tensor, targets: torch.Tensor, geometry: MapGeometry, image_channels: int,
           neighbourhood: int = NEIGHBOURHOOD) -> NormalEquations:
        """Accumulated over ``embedded`` (N x F square-rooted features) and ``targets`` (N x D flattened images)."""
        xtx = xty = cell_sums = None
        for start in range(0, len(embedded), CHUNK):
            x = design(embedded[start : start + CHUNK].float(), geometry, neighbourhood)
            y = blocks(targets[start : start + CHUNK].float(), geometry, image_channels)
            parts = ((x.T @ x).double(), (x.T @ y).double(), x.view(-1, geometry.grid**2, x.shape[1]).sum(0).double())
            xtx, xty, cell_sums = parts if xtx is None else (xtx + parts[0], xty + parts[1], cell_sums + parts[2])
        return cls(xtx, xty, cell_sums, geometry, image_channels, neighbourhood)

    def __add__(self, other: NormalEquations) -> NormalEquations:
        return NormalEquations(self.xtx + other.xtx, self.xty + other.xty, self.cell_sums + other.cell_sums,
                               self.geometry, self.image_channels, self.neighbourhood)

    def decoder(self, mean: torch.Tensor, ridge: float) -> LocalDecoder:
        """The ridge solution for targets centred on ``mean`` (D); ``ridge`` relative to the mean diagonal, bias free."""
        mean_blocks = blocks(mean[None].float(), self.geometry, self.image_channels).double()  # cells x (c s s)
        xty = self.xty - self.cell_sums.T @ mean_blocks
        system = self.xtx.clone()
        diagonal = system.diagonal()[:-1]
        diagonal.add_(ridge * float(diagonal.mean().clamp(min=1e-12)))
        weights = torch.linalg.solve(system, xty).float()
        return LocalDecoder(self.geometry, self.neighbourhood, weights, mean.float(), ridge, self.image_channels)

