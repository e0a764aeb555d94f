"""A small convolutional network that learns what the linear local decoder of a feature map misses.

The linear local decoder (:mod:`attacks.inversion.local_decoder`) regresses each block of
pixels on the cells around it: closed form, but linear, and `simple`'s fc input is a
ReLU-and-max-pool map whose relation to the pixels is not. Dosovitskiy & Brox (2016) invert
CNN features with a trained convolutional decoder; this is theirs made small and residual: four
3 x 3 convolutions over the map's cells (the same padded grid whose blocks tile the image) and
a 1 x 1 convolution to each cell's block of pixels, added to the linear decoder's image. It
starts at the linear decoder (the last layer starts at zero) and is trained by Adam on the
server's own images pushed through the model it attacks, as the linear decoder is: every cell
of every image is an example (1.6 million at 224x224 with 1,176 server images and a copy each).

Measured at 224x224 (48 held-out MRI slices, 1,176 server images and one augmented copy each,
the true fc input, 2 CPU threads, 12 epochs unless said): the linear decoder 22.51 dB, the kernel
regression 22.73 dB, their out-of-fold average 23.24 dB. This network, 3 hidden layers of 64
channels, batch 32, learning rate 1e-3: 24.01 dB after 6 epochs (39 s); 128 channels 24.85 dB
(228 s); a second, finer upsampling stage 24.96 dB (366 s, not kept); three augmented copies
for 6 epochs 24.92 dB; 4 hidden layers 25.08 dB (302 s); learning rate 2e-3 25.39 dB; batch
16 25.78 dB, batch 8 25.87 dB (310 s); 24 epochs 26.24 dB (620 s), kept: the network is
trained once per attacked model (it trains on CUDA where the attack runs there; not measured,
no GPU was lent). Its average with the kernel regression (weight 0.75) 26.25 dB. At learning
rate 4e-3 (batch 32) the network died back to the linear decoder (22.52 dB); the posterior
only keeps a network that beats the linear decoder on held-out server images, so such a run
costs time, not accuracy. The same death struck the shipped settings with plain ReLU: at 12
epochs (seeds 0 and 1) the last hidden layer went wholly inactive at the peak learning rate and
the network ended at the linear decoder's 22.52 dB; the 24-epoch runs had survived by chance.
Leaky units (:data:`NEGATIVE_SLOPE`) and a floor on the input scale (:data:`SCALE_FLOOR`) train
through: 26.03 dB after 12 epochs, seed 0. They are not a guarantee: on the seed study's
FedAvg model at 224x224 (830 server images) a 24-epoch fit with them still ended no better
than the linear decoder held out (dropped), where a 6-epoch fit gained +1.9 dB (+5.17 -> +7.10
dB held out). So training returns the weights of its epoch of lowest mean training loss.

The breakdown is a spike at the peak learning rate, not overfitting: on a GPU (bench/conv_decoder.py,
24 epochs, seed 0) the mean training loss of both models rose a thousandfold in one epoch (the
7th and 8th), the lowest-loss snapshot then kept an early network (held out +6.71 and +7.24 dB,
the linear decoder +5.17 and +5.57). Cutting each step's gradient norm to twice its running mean
(:data:`CLIP`) removed the spike on both: +7.56 and +8.10 dB, the loss falling every epoch; the
peak learning rate halved without cutting gave +7.52 and +7.99 dB. Seed 1: +7.54 and (48
epochs) +8.22 dB; 48 epochs added +0.0 and +0.1 dB, so 24 stay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from attacks.inversion.local_decoder import POWERS, LocalDecoder, MapGeometry, assemble, cell_maps

#: hidden 3 x 3 convolutions and their channels, passes over the training images, images per
#: Adam step, and the peak of the one-cycle learning rate (measured at 224x224, see the module docstring)
DEPTH = 4
WIDTH = 128
EPOCHS = 24
BATCH = 8
LEARNING_RATE = 2e-3
#: images used to compute the input normalisation
NORMALISATION_IMAGES = 256
#: each input channel's scale is at least this share of the median channel's: a channel that is
#: almost always zero (std 0.0024 at 224x224, against a median ~0.4) otherwise enters at 240 of
#: its standard deviations when it fires, and those spikes helped kill the network (below)
SCALE_FLOOR = 0.5
#: leaky hidden units: with plain ReLU at the peak learning rate the last hidden layer went
#: wholly inactive (0% of units from the 4th of 12 epochs, seeds 0 and 1 alike, at 224x224) and
#: the network fell back to the linear decoder; with this slope and the floor it trained through
NEGATIVE_SLOPE = 0.05
#: images per forward pass when predicting
CHUNK = 16
#: relative gradient clipping (0: off): a step's gradient norm is cut to this multiple of the
#: running mean of the earlier steps' (cut) norms, after :data:`CLIP_WARMUP` steps that only
#: measure it; the running mean forgets at :data:`CLIP_MOMENTUM` per step. Without it, at 224x224
#: on a GPU, both models of bench/conv_decoder.py blew up at the peak learning rate (the mean
#: loss rose from 0.0045 to 323 and 2,606 in one epoch); with it the loss fell every epoch
CLIP = 2.0
CLIP_WARMUP = 50
CLIP_MOMENTUM = 0.98
#: "auto": train under bfloat16 autocast where the device computes it natively (CUDA with bf16,
#: CPUs with AVX512-BF16 or AMX), else in fp32 (emulated bf16 is slower than fp32). Weights, Adam
#: and the loss stay fp32. Measured on 2 AMD EPYC (AVX512-BF16) cores, one training step at
#: 224x224 (bench, batch 8): 89 ms in fp32, 46 ms in bf16
PRECISION = "auto"
PRECISIONS = ("auto", "fp32", "bf16")


class ResidualNet(nn.Module):
    """Each cell's features to the linear decoder's powers in, the cell's ``stride x stride`` block of pixels out."""

    def __init__(self, geometry: MapGeometry, image_channels: int, width: int = WIDTH, depth: int = DEPTH) -> None:
        super().__init__()
        self.geometry, self.image_channels = geometry, image_channels
        inputs = len(POWERS) * geometry.channels
        self.register_buffer("centre", torch.zeros(1, inputs, 1, 1))
        self.register_buffer("scale", torch.ones(1, inputs, 1, 1))
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv2d(inputs if i == 0 else width, width, 3, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE)]
        self.body = nn.Sequential(*layers, nn.Conv2d(width, image_channels * geometry.stride**2, 1))
        nn.init.zeros_(self.body[-1].weight)  # starts as the linear decoder
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        """N x D flattened residual images from N x F embedded features."""
        out = self.body((cell_maps(embedded, self.geometry) - self.centre) / self.scale)
        rows = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
        return assemble(rows, len(embedded), self.geometry, self.image_channels)


@dataclass
class ConvDecoder:
    """``image = local(features) + net(features)``."""

    local: LocalDecoder
    net: ResidualNet
    epochs: int
    best_epoch: int | None = None  # 1-based epoch whose weights were kept, where trained
    loss_by_epoch: list[float] | None = None  # mean training loss of each epoch, where trained
    learning_rate: float = LEARNING_RATE
    clip: float = CLIP
    precision: str = "fp32"  # what training ran in ("auto" resolved)

    def predict(self, embedded: torch.Tensor) -> torch.Tensor:
        """N x D images (flattened, not clamped, float64 as the other guesses) from N x F embedded features."""
        return self.local.predict(embedded).double().cpu() + self.residual(embedded)

    def residual(self, embedded: torch.Tensor) -> torch.Tensor:
        """N x D float64: what the network adds to the linear decoder's images."""
        parameter = next(self.net.parameters())
        with torch.no_grad():
            residual = torch.cat([self.net(chunk.to(parameter)).cpu() for chunk in embedded.float().split(CHUNK)])
        return residual.double()

    def describe(self) -> dict:
        convolutions = [m for m in self.net.body if isinstance(m, nn.Conv2d)]
        losses = None if self.loss_by_epoch is None else [float(f"{x:.4g}") if math.isfinite(x) else None
                                                          for x in self.loss_by_epoch]
        return {"depth": len(convolutions) - 1, "width": convolutions[0].out_channels, "epochs": self.epochs,
                "learning_rate": self.learning_rate, "clip": self.clip, "precision": self.precision,
                "best_epoch": self.best_epoch, "loss_by_epoch": losses}

    @classmethod
    def train(cls, local: LocalDecoder, embedded: torch.Tensor, targets: torch.Tensor, device, seed: int = 0,
              epochs: int | None = None, width: int | None = None, depth: int | None = None,
              learning_rate: float | None = None, clip: float | None = None,
              precision: str | None = None) -> ConvDecoder:
        """Fit the residual network to ``targets - local(embedded)`` (N x D flattened images), deterministically per seed.

        Returns the network as it was after its epoch of lowest mean training loss, so a run that
        breaks down late keeps what it had learned before (measured: the module's docstring).
        """
        epochs = EPOCHS if epochs is None else epochs
        width = WIDTH if width is None else width
        depth = DEPTH if depth is None else depth
        learning_rate = LEARNING_RATE if learning_rate is None else learning_rate
        clip = CLIP if clip is None else clip
        device = torch.device(device)
        precision = training_precision(device, PRECISION if precision is None else precision)
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = ResidualNet(local.geometry, local.image_channels, width, depth)
        embedded = embedded.float()
        with torch.no_grad():
            sample = cell_maps(embedded[:NORMALISATION_IMAGES], local.geometry)
            spread = sample.std((0, 2, 3), keepdim=True)
            net.centre.copy_(sample.mean((0, 2, 3), keepdim=True))
            net.scale.copy_(spread.clamp_min(SCALE_FLOOR * float(spread.median())) + 1e-6)
            residuals = targets.float() - local.predict(embedded).float()
        net = net.to(device)
        steps_per_epoch = max(1, len(embedded) // BATCH)
        parameters = list(net.parameters())
        optimizer = torch.optim.Adam(parameters, lr=learning_rate)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=epochs * steps_per_epoch)
        best_loss, best_state, best_epoch, losses = math.inf, None, None, []
        running_norm, steps = None, 0
        with torch.enable_grad():
            for epoch in range(1, epochs + 1):
                order = torch.randperm(len(embedded), generator=generator)
                epoch_loss = torch.zeros((), device=device)
                for step in range(steps_per_epoch):
                    rows = order[step * BATCH : (step + 1) * BATCH]
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                        out = net(embedded[rows].to(device))
                    loss = (out.float() - residuals[rows].to(device)).pow(2).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if clip > 0:
                        running_norm = _clip_relative(parameters, running_norm, clip, steps >= CLIP_WARMUP)
                    steps += 1
                    optimizer.step()
                    schedule.step()
                    epoch_loss += loss.detach()  # no per-step synchronisation on CUDA
                losses.append(float(epoch_loss) / steps_per_epoch)
                if losses[-1] < best_loss:  # NaN never is
                    best_loss, best_epoch = losses[-1], epoch
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if best_state is not None:
            net.load_state_dict(best_state)
        return cls(local, net.eval(), epochs, best_epoch, losses, learning_rate, clip, precision)


@dataclass
class DecoderEnsemble:
    """The mean image of networks trained alike from different seeds: each one's own errors partly cancel.

    Measured at 224x224 on bench/inversion.py's 24 slices (1,176 server images, one fit): a
    second network (seed 1) alone scored as the first (the guess +9.56 against +9.58 dB over the
    null); the mean of the two raised the guess to +9.79 dB and the attack's returned image from
    +9.75 to +9.90 dB, every one of the 24 slices better (paired +0.20 dB, interval +-0.03); held
    out on the server's images +8.11 -> +8.3 dB. Trained in bf16 (:data:`PRECISION`;
    bench/conv_decoder.py --networks 4 --precisions bf16, same model and held-out slices), the
    mean of the first 1 / 2 / 3 / 4 networks: +8.10 / +8.29 / +8.35 / +8.37 dB (fp32: +8.11 and
    +8.29 for 1 and 2), 328 s per network on 2 CPU cores with AVX512-BF16 against ~600 s in fp32,
    so three cost less than two did in fp32 (25 s each on a GPU).
    """

    members: list[ConvDecoder]
    seeds: list[int]

    def predict(self, embedded: torch.Tensor) -> torch.Tensor:
        """N x D images (flattened, float64): the members' mean (they share one linear decoder, computed once)."""
        residual = torch.stack([member.residual(embedded) for member in self.members]).mean(0)
        return self.members[0].local.predict(embedded).double().cpu() + residual

    def describe(self) -> dict:
        """The first member's fields (as a single network's), the number of networks and each one's training."""
        members = [member.describe() for member in self.members]
        return {**members[0], "networks": len(members),
                "members": [{"seed": seed, "best_epoch": m["best_epoch"], "loss_by_epoch": m["loss_by_epoch"]}
                            for seed, m in zip(self.seeds, members)]}


def training_precision(device: torch.device, precision: str = PRECISION) -> str:
    """``precision`` with "auto" resolved for ``device`` (:data:`PRECISION`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or \
            getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        return "bf16" if native else "fp32"
    return "fp32"


def _clip_relative(parameters: list[nn.Parameter], running: torch.Tensor | None, factor: float, active: bool) -> torch.Tensor:
    """Cut the gradients' norm to ``factor`` x the running mean norm (where ``active``); returns the new running mean.

    Stays on the device (no synchronisation): the cut is a multiplication by min(1, limit / norm).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if running is None:
        return norm.detach().clone()
    if active:
        limit = factor * running
        torch._foreach_mul_(grads, (limit / (norm + 1e-12)).clamp(max=1.0))
        norm = torch.minimum(norm, limit)
    return running.lerp(norm.detach(), 1 - CLIP_MOMENTUM)
