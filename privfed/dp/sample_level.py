"""Sample-level DP-SGD on one client (Abadi et al. 2016, https://arxiv.org/abs/1607.00133).

Each round the engine enters :meth:`SampleLevelPrivacy.training`, which wraps the client's
own model, optimizer and data with private pieces (book-keeping per-sample clipping, see
:mod:`privfed.dp.bookkeeping`; Opacus' DPOptimizer and Poisson DPDataLoader) and takes them
off again on exit. The RDP accountant is created once per client, so epsilon composes over rounds x local steps at the true sampling rate
batch_size / n, which a fresh ``PrivacyEngine`` per round would silently reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from opacus.data_loader import DPDataLoader
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader

from privfed.dp.accounting import AccountedPrivacy, PersistentAccountant, solve_noise_multiplier
from privfed.dp.bookkeeping import BookKeepingDPOptimizer, BookKeepingGradSampleModule, strip_opacus_attributes
from privfed.dp.config import DPConfig, default_delta
from privfed.errors import PrivfedError


def poisson_steps_per_epoch(num_samples: int, batch_size: int) -> int:
    """Batches one pass over a Poisson DPDataLoader yields (Opacus: int(1 / sample_rate))."""
    rate = min(1.0, batch_size / num_samples)
    return max(1, int(1 / rate))


def derive_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from ``generator``: noise must be drawn where params live."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    derived = torch.Generator(device=device)
    derived.manual_seed(seed)
    return derived


def check_opacus_compatible(model: nn.Module) -> None:
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        names = "; ".join(str(e) for e in errors[:3])
        raise PrivfedError(
            f"model is not compatible with DP-SGD ({names}); build it with build_model(..., dp=True) "
            "(GroupNorm instead of BatchNorm)"
        )


class SampleLevelPrivacy(AccountedPrivacy):
    """DP-SGD for one client over the whole run; one instance per client.

    ``steps_per_round`` x ``rounds`` is the planned number of DP-SGD steps, used only to
    solve the noise from ``target_epsilon``; the accountant counts the steps really taken.
    """

    level = "sample"

    def __init__(self, config: DPConfig, num_samples: int, batch_size: int, steps_per_round: int, rounds: int) -> None:
        config.validate()
        if num_samples < 1:
            raise PrivfedError("sample-level DP needs a client with at least one training image")
        if batch_size < 1:
            raise PrivfedError(f"--batch-size must be positive, got {batch_size}")
        self.config = config
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.sample_rate = min(1.0, batch_size / num_samples)
        self.expected_batch_size = max(1, round(self.sample_rate * num_samples))
        self.delta = float(config.delta) if config.delta is not None else default_delta(num_samples)
        self.max_grad_norm = float(config.max_grad_norm)
        self.planned_steps = int(steps_per_round) * int(rounds)
        if config.noise_multiplier is not None:
            self.noise_multiplier = float(config.noise_multiplier)
        else:
            self.noise_multiplier = solve_noise_multiplier(
                float(config.target_epsilon), self.delta, self.sample_rate, max(1, self.planned_steps),
                f"{rounds} rounds x {steps_per_round} local steps",
            )
        self._accountant = PersistentAccountant(self.noise_multiplier, self.sample_rate, self.delta)

    @property
    def steps_per_epoch(self) -> int:
        return poisson_steps_per_epoch(self.num_samples, self.batch_size)

    @property
    def steps(self) -> int:
        return self._accountant.steps

    @contextmanager
    def training(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader, generator: torch.Generator
    ) -> Iterator[tuple[nn.Module, BookKeepingDPOptimizer, DPDataLoader]]:
        """Yield ``(private_model, private_optimizer, poisson_loader)`` for one round.

        Use them as usual (``loss = criterion(private_model(x), y); loss.backward();
        private_optimizer.step()``, with a mean-reduced loss). ``model``'s own parameters
        are trained in place, so on exit ``model`` (names unchanged, no ``_module.``
        prefix, no hooks) holds the result. A data-independent penalty such as FedProx's
        proximal term must go through ``private_optimizer.set_regularizer(fn)``, not the loss.
        """
        check_opacus_compatible(model)
        if len(loader.dataset) != self.num_samples:
            raise PrivfedError(
                f"the client's loader has {len(loader.dataset)} samples but privacy was set up for "
                f"{self.num_samples}; create SampleLevelPrivacy with the client's training-set size"
            )
        device = next(model.parameters()).device
        private_model = BookKeepingGradSampleModule(model, loss_reduction="mean")
        private_optimizer = None
        try:
            private_optimizer = BookKeepingDPOptimizer(
                optimizer,
                module=private_model,
                clipping=self.config.clipping,
                noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.max_grad_norm,
                expected_batch_size=self.expected_batch_size,
                loss_reduction="mean",
                generator=derive_generator(generator, device),
            )
            private_optimizer.attach_step_hook(self._accountant.accountant.get_optimizer_hook_fn(self.sample_rate))
            poisson_loader = DPDataLoader(
                loader.dataset,
                sample_rate=self.sample_rate,
                collate_fn=loader.collate_fn,
                generator=generator,
                num_workers=loader.num_workers,
                pin_memory=loader.pin_memory,
            )
            yield private_model, private_optimizer, poisson_loader
        finally:
            if private_optimizer is not None:
                private_optimizer.close()
            private_model.cleanup()
            strip_opacus_attributes(model)

