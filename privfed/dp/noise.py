"""Gaussian noise for DP-SGD, drawn on spare CPU cores.

On CPU, torch draws normal samples on one thread (one Mersenne Twister behind a lock), about
4.5 ns each: for ``simple`` at 224x224 (18.4M parameters) that is ~95 ms per step, a quarter
of the whole non-private step, and a third of it at 64x64. Two remedies, both keeping every
coordinate an independent N(0, 1) sample, reproducible from the caller's generator:

* the noise is cut into fixed chunks, each drawn from its own generator seeded from the
  caller's, so chunks can be drawn on several threads (torch releases the GIL inside the
  draw) and the values do not depend on how many threads drew them;
* :class:`NoiseStream` draws the *next* step's noise in the background as soon as a step
  has taken its own: the noise does not depend on the data, so it can be drawn while the
  next forward and backward passes run, on a core torch's own threads leave free. Where
  torch already uses every core, a background thread would only preempt them (and stall
  their parallel regions), so the draw stays in the step, on all threads.

On GPUs the draw is already parallel and cheap: one call, no background.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch

#: Samples per independently seeded chunk.
CHUNK = 1 << 18

_pools: dict[str, ThreadPoolExecutor] = {}
# A forked child inherits the pools but not their threads: it must start its own.
os.register_at_fork(after_in_child=_pools.clear)


def _pool(name: str, workers: int) -> ThreadPoolExecutor:
    key = f"{name}-{workers}"
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"privfed-{name}")
    return _pools[key]


def chunk_seeds(numel: int, generator: torch.Generator | None) -> list[int]:
    """One seed per chunk of :data:`CHUNK` samples, drawn from ``generator``."""
    chunks = max(1, -(-numel // CHUNK))
    return torch.randint(0, 2**62, (chunks,), generator=generator).tolist()


def draw(
    numel: int, seeds: list[int], device: torch.device, dtype: torch.dtype, workers: int = 1,
    cancelled: threading.Event | None = None,
) -> torch.Tensor | None:
    """A flat tensor of ``numel`` i.i.d. N(0, 1) samples, chunk k drawn from ``seeds[k]``.

    With ``cancelled`` (one worker only), stops between chunks once it is set and returns None.
    """
    out = torch.empty(numel, device=device, dtype=dtype)
    parts = list(zip(out.split(CHUNK), seeds))

    def fill(part: tuple[torch.Tensor, int]) -> None:
        chunk, seed = part
        chunk.normal_(generator=torch.Generator(device=device).manual_seed(seed))

    if workers < 2 or len(parts) < 2:
        for part in parts:
            if cancelled is not None and cancelled.is_set():
                return None
            fill(part)
    else:
        list(_pool("noise", workers).map(fill, parts))
    return out


def has_spare_core() -> bool:
    """Does torch leave at least one of this process' cores free?"""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return torch.get_num_threads() < cores


def standard_normal(numel: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``numel`` i.i.d. N(0, 1) samples now, on every torch thread (CPU) or in one call (GPU)."""
    if device.type != "cpu":
        return torch.empty(numel, device=device, dtype=dtype).normal_(generator=generator)
    return draw(numel, chunk_seeds(numel, generator), device, dtype, workers=torch.get_num_threads())


class NoiseStream:
    """Successive noise draws of one size; each :meth:`take` starts drawing the next in the background.

    The values are those successive :func:`standard_normal` calls with the same generator
    would give (seeds are drawn on the caller's thread, in order), whatever the threads.
    """

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator
        self._next: tuple[tuple, Future, threading.Event] | None = None

    def take(self, numel: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if device.type != "cpu":
            return standard_normal(numel, self.generator, device, dtype)
        key = (numel, device, dtype)
        if self._next is not None and self._next[0] == key:
            noise = self._next[1].result()
        else:
            self.discard()
            noise = standard_normal(numel, self.generator, device, dtype)
        if not has_spare_core():
            return noise
        seeds = chunk_seeds(numel, self.generator)
        cancelled = threading.Event()
        self._next = (key, _pool("noise-ahead", 1).submit(draw, numel, seeds, device, dtype, 1, cancelled), cancelled)
        return noise

    def discard(self) -> None:
        """Stop the draw under way; returns once it has (at most one chunk's time, ~1 ms)."""
        if self._next is not None:
            self._next[2].set()
            self._next[1].result()
            self._next = None
