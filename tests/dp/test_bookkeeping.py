"""The book-keeping wrapper's contract: one record per layer per step, refusals named, noise drawn right."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from privfed.dp.bookkeeping import BookKeepingDPOptimizer, BookKeepingGradSampleModule
from privfed.dp import noise
from privfed.dp.noise import CHUNK, NoiseStream, standard_normal
from privfed.errors import PrivfedError


def wrapped(model: nn.Module, sigma: float = 0.0) -> tuple[BookKeepingGradSampleModule, BookKeepingDPOptimizer]:
    private = BookKeepingGradSampleModule(model, loss_reduction="mean")
    optimizer = BookKeepingDPOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.0), module=private, noise_multiplier=sigma, max_grad_norm=1.0,
        expected_batch_size=4,
    )
    return private, optimizer


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 3)

    def forward(self, x):
        return self.layer(self.layer(x))


def test_a_layer_used_twice_in_one_pass_is_refused() -> None:
    private, _ = wrapped(Twice())
    with pytest.raises(PrivfedError, match="'layer'"):
        private(torch.randn(4, 3)).sum().backward()


def test_two_backward_passes_before_a_step_are_refused() -> None:
    private, optimizer = wrapped(nn.Sequential(nn.Linear(3, 2)))
    private(torch.randn(4, 3)).sum().backward()
    with pytest.raises(PrivfedError, match="optimizer.step"):
        private(torch.randn(4, 3)).sum().backward()
    optimizer.zero_grad()  # clears the records: the next pass is fine again
    private(torch.randn(4, 3)).sum().backward()
    optimizer.step()


def test_parameters_stay_trainable_and_evaluation_records_nothing() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    private, optimizer = wrapped(model)
    with torch.no_grad():
        private(torch.randn(4, 3))
    assert not private.has_records
    loss = private(torch.randn(4, 3)).sum()
    assert all(p.requires_grad for p in model.parameters())
    loss.backward()
    assert all(p.grad is None for p in model.parameters())  # autograd made no weight gradient
    assert private.has_records
    optimizer.step()
    assert all(p.grad is not None for p in model.parameters())
    private.cleanup()
    assert not any(m._forward_hooks for m in model.modules())


def test_parallel_noise_is_standard_normal_and_reproducible() -> None:
    n = 2 * CHUNK + 5
    draws = []
    for threads in (1, 2):  # the values do not depend on how many threads draw them
        torch.set_num_threads(threads)
        draws.append(standard_normal(n, torch.Generator().manual_seed(7), torch.device("cpu"), torch.float32))
    assert torch.equal(draws[0], draws[1])
    x = draws[0]
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1.0) < 0.01
    half = n // 2
    assert abs(torch.corrcoef(torch.stack([x[:half], x[half : 2 * half]]))[0, 1].item()) < 0.01  # chunks independent
    other = standard_normal(n, torch.Generator().manual_seed(8), torch.device("cpu"), torch.float32)
    assert not torch.equal(x, other)


@pytest.mark.parametrize("spare_core", [True, False], ids=["drawn ahead", "drawn in the step"])
def test_noise_stream_gives_what_drawing_in_turn_gives(monkeypatch, spare_core: bool) -> None:
    monkeypatch.setattr(noise, "has_spare_core", lambda: spare_core)
    cpu = torch.device("cpu")
    g = torch.Generator().manual_seed(3)
    in_turn = [standard_normal(CHUNK + 7, g, cpu, torch.float32) for _ in range(3)]
    stream = NoiseStream(torch.Generator().manual_seed(3))
    ahead = [stream.take(CHUNK + 7, cpu, torch.float32) for _ in range(3)]
    assert (stream._next is not None) == spare_core
    stream.discard()
    assert all(torch.equal(a, b) for a, b in zip(in_turn, ahead))
    assert not torch.equal(ahead[0], ahead[1])
