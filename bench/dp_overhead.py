"""Cost of sample-level DP per architecture and image size: DP over non-DP time per epoch.

For each (architecture, image size) one model is built and copied, and every variant trains
its own copy on the *same* fixed batches (one permutation of the same images, cut into
``--batch-size`` batches; under DP the engine would draw Poisson batches of that expected
size, which only adds variance to a cost comparison):

* ``plain``: the non-private step, ``loss.backward(); optimizer.step()``;
* ``privfed``: :meth:`privfed.dp.SampleLevelPrivacy.training` (book-keeping clipping, see
  :mod:`privfed.dp.bookkeeping`);
* ``opacus-ghost``: Opacus' ``PrivacyEngine(grad_sample_mode="ghost")`` (ghost clipping,
  two backward passes);
* ``opacus-hooks``: Opacus' default per-sample gradients (``grad_sample_mode="hooks"``).

All use noise 1.0 and clip 1.0. After a warm-up the variants take turns, so load from other
processes hits all alike: plain and privfed one whole epoch each (privfed entering
``training`` per epoch, as the engine does per round, so the noise it draws ahead in the
background is inside its epoch), each Opacus mode one step, wrapped once (an Opacus epoch
is its median step x steps per epoch; all batches are the same size). ``ratio`` is a
variant's median seconds per epoch over plain's. ``peak_mb`` is the memory one training step adds on
top of what was live before it: on CUDA the allocator's peak; on CPU the growth of the
process' resident high-water mark (Linux: ``/proc/self/clear_refs``, after ``malloc_trim``),
or ``nan`` where unavailable. Opacus' modes run 10-30x slower on the torchvision models
(im2col per-sample gradients), so they time ``--opacus-steps`` steps only.

    .venv/bin/python bench/dp_overhead.py --archs all --image-sizes 64,224 --threads 2
    .venv/bin/python bench/dp_overhead.py --archs simple --image-sizes 64 --json
"""

from __future__ import annotations

import copy
import ctypes
import json
import math
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import typer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from privfed.dp import DPConfig, SampleLevelPrivacy
from privfed.models import ARCHITECTURES, build_model

app = typer.Typer(add_completion=False)

MODES = ("privfed", "opacus-ghost", "opacus-hooks")
NOISE_MULTIPLIER = 1.0
MAX_GRAD_NORM = 1.0

Batches = list[tuple[torch.Tensor, torch.Tensor]]


# ---------------------------------------------------------------- peak memory of one step


class StepMemory:
    """Memory one call adds on top of what was live before it, in MiB."""

    _STATUS = Path("/proc/self/status")
    _CLEAR_REFS = Path("/proc/self/clear_refs")

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._libc = None
        if device.type == "cpu":
            try:
                self._libc = ctypes.CDLL("libc.so.6")
                self._kib("VmRSS")
                self._CLEAR_REFS.write_text("5")
            except OSError:
                self._libc = None

    def _kib(self, key: str) -> int:
        return int(re.search(rf"{key}:\s+(\d+) kB", self._STATUS.read_text()).group(1))

    def measure(self, fn: Callable[[], None]) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            fn()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated(self.device) - before) / 2**20
        if self._libc is None:
            fn()
            return math.nan
        self._libc.malloc_trim(0)  # return freed heap to the OS so RSS starts at what is live
        before = self._kib("VmRSS")
        self._CLEAR_REFS.write_text("5")  # reset the high-water mark to the current RSS
        fn()
        return (self._kib("VmHWM") - before) / 1024


# ---------------------------------------------------------------- the variants


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), y)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


@contextmanager
def plain(model: nn.Module, loader: DataLoader) -> Iterator[Callable]:
    optimizer = sgd(model)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        cross_entropy(model, x, y).backward()
        optimizer.step()

    yield step


@contextmanager
def privfed(model: nn.Module, loader: DataLoader) -> Iterator[Callable]:
    n = len(loader.dataset)
    privacy = SampleLevelPrivacy(
        DPConfig("sample", noise_multiplier=NOISE_MULTIPLIER, max_grad_norm=MAX_GRAD_NORM), n, loader.batch_size, 1, 1
    )
    with privacy.training(model, sgd(model), loader, torch.Generator().manual_seed(0)) as (pmodel, popt, _):

        def step(x, y):
            popt.zero_grad(set_to_none=True)
            cross_entropy(pmodel, x, y).backward()
            popt.step()

        yield step


def opacus(mode: str) -> Callable:
    """Opacus' own PrivacyEngine in ``grad_sample_mode`` ``mode``, wrapped once per copy."""

    @contextmanager
    def variant(model: nn.Module, loader: DataLoader) -> Iterator[Callable]:
        from opacus import PrivacyEngine

        wrapped = PrivacyEngine().make_private(
            module=model, optimizer=sgd(model), data_loader=loader, criterion=nn.CrossEntropyLoss(),
            noise_multiplier=NOISE_MULTIPLIER, max_grad_norm=MAX_GRAD_NORM, grad_sample_mode=mode,
            poisson_sampling=False,
        )
        if mode == "ghost":
            pmodel, popt, criterion, _ = wrapped
        else:
            (pmodel, popt, _), criterion = wrapped, nn.CrossEntropyLoss()

        def step(x, y):
            popt.zero_grad(set_to_none=True)
            criterion(pmodel(x), y).backward()
            popt.step()

        yield step

    return variant


VARIANTS: dict[str, Callable] = {
    "plain": plain,
    "privfed": privfed,
    "opacus-ghost": opacus("ghost"),
    "opacus-hooks": opacus("hooks"),
}


# ---------------------------------------------------------------- measurement


def fixed_batches(samples: int, image_size: int, batch_size: int, device: torch.device) -> Batches:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(samples, 3, image_size, image_size, generator=g)
    y = torch.randint(0, 2, (samples,), generator=g)
    order = torch.randperm(samples, generator=g)
    return [(x[i].to(device), y[i].to(device)) for i in order.split(batch_size)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


#: Variants timed by whole epochs, entering their context each epoch as the engine does each
#: round (privfed draws noise ahead in the background: its epoch includes all of that work).
#: Opacus' modes are too slow for that and have no background work: they are wrapped once and
#: timed step by step.
EPOCH_TIMED = ("plain", "privfed")


class Runner:
    """One model copy per variant, all trained on the same fixed batches."""

    def __init__(self, arch: str, image_size: int, shared_width: int, batches: Batches, names: list[str], device) -> None:
        torch.manual_seed(0)
        base = build_model(arch, image_size=image_size, shared_width=shared_width, dp=True).to(device).train()
        self.device = device
        self.batches = batches
        x = torch.cat([b[0] for b in batches]).cpu()
        y = torch.cat([b[1] for b in batches]).cpu()
        self.loader = DataLoader(TensorDataset(x, y), batch_size=len(batches[0][1]))
        self.models = {name: copy.deepcopy(base) for name in names}
        self.wrapped = {}  # Opacus: entered once
        for name in names:
            if name not in EPOCH_TIMED:
                context = VARIANTS[name](self.models[name], self.loader)
                self.wrapped[name] = (context, context.__enter__())

    @contextmanager
    def stepper(self, name: str) -> Iterator[Callable]:
        if name in self.wrapped:
            yield self.wrapped[name][1]
        else:
            with VARIANTS[name](self.models[name], self.loader) as step:
                yield step

    def epoch(self, name: str, clock: Callable[[], float]) -> float:
        start = clock()
        with self.stepper(name) as step:
            for x, y in self.batches:
                step(x, y)
        synchronize(self.device)
        return clock() - start

    def step(self, name: str, index: int, clock: Callable[[], float]) -> float:
        x, y = self.batches[index % len(self.batches)]
        start = clock()
        self.wrapped[name][1](x, y)
        synchronize(self.device)
        return clock() - start

    def step_peak_mb(self, name: str, memory: StepMemory) -> float:
        x, y = self.batches[0]
        with self.stepper(name) as step:
            step(x, y)  # a context's first step may allocate lazily: measure its second
            return memory.measure(lambda: (step(x, y), synchronize(self.device)))

    def close(self) -> None:
        for context, _ in self.wrapped.values():
            context.__exit__(None, None, None)


#: ``--clock``: wall time, or this process' CPU time (all its threads), which on a machine
#: shared with other jobs counts the work done rather than the time spent waiting for a core.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def measure(runner: Runner, names: list[str], repeats: int, opacus_steps: int, memory: StepMemory, clock) -> dict[str, dict[str, float]]:
    """Seconds per epoch and step peak MB per variant, the variants taking turns.

    In round r each epoch-timed variant runs one epoch and each Opacus mode (while r <
    ``opacus_steps``) one step; an Opacus epoch is its median step x steps per epoch.
    """
    for name in names:  # warm-up (allocator, one-time kernel choices)
        runner.epoch(name, clock) if name in EPOCH_TIMED else runner.step(name, 0, clock)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(max(repeats, opacus_steps)):
        for name in names:
            if name in EPOCH_TIMED and r < repeats:
                times[name].append(runner.epoch(name, clock))
            elif name not in EPOCH_TIMED and r < opacus_steps:
                times[name].append(runner.step(name, r, clock) * len(runner.batches))
    return {name: {"seconds": statistics.median(times[name]), "peak_mb": runner.step_peak_mb(name, memory)} for name in names}


@app.command()
def main(
    archs: str = typer.Option("simple", help=f"Comma-separated, from: {', '.join(ARCHITECTURES)}; or 'all'."),
    image_sizes: str = typer.Option("64,224", help="Comma-separated image sides in pixels."),
    samples: int = typer.Option(128, help="Images in the client's epoch."),
    batch_size: int = typer.Option(32, help="Batch size (DP: expected Poisson batch size)."),
    shared_width: int = typer.Option(1024, help="Width of the shared layer."),
    repeats: int = typer.Option(3, help="Epochs timed for plain and privfed (median kept)."),
    opacus_steps: int = typer.Option(4, help="Steps timed for each Opacus mode (they are 10-30x slower)."),
    threads: int = typer.Option(2, help="torch CPU threads (torch.set_num_threads)."),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
    modes: str = typer.Option(",".join(MODES), help=f"Comma-separated DP variants, from: {', '.join(MODES)}."),
    clock: str = typer.Option("wall", help="wall, or cpu (process CPU time: steadier on a busy machine)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per (arch, image size, mode)."),
) -> None:
    if clock not in CLOCKS:
        raise typer.BadParameter(f"--clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    torch.set_num_threads(threads)
    for notice in ("Secure RNG turned off", "Full backward hook is firing"):  # Opacus notices, harmless here
        warnings.filterwarnings("ignore", message=notice)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    arch_names = list(ARCHITECTURES) if archs == "all" else archs.split(",")
    sizes = [int(s) for s in image_sizes.split(",")]
    dp_modes = [m for m in modes.split(",") if m]
    unknown = [m for m in dp_modes if m not in MODES]
    if unknown:
        raise typer.BadParameter(f"--modes: unknown {unknown}; choose from {', '.join(MODES)}")
    names = ["plain", *dp_modes]
    memory = StepMemory(dev)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if as_json else (lambda text: print(text, flush=True))
    say(f"torch threads: {torch.get_num_threads()}; device: {dev}; {samples} images, batch {batch_size}, shared width "
        f"{shared_width}; {clock} clock; noise {NOISE_MULTIPLIER}, clip {MAX_GRAD_NORM}")
    say(f"seconds per epoch: median of {repeats} epochs (Opacus: median of {opacus_steps} steps x steps per epoch); "
        "ratio = DP / plain; MB = memory one step adds (peak)")
    header = f"{'arch':<20}{'size':>5}{'plain s':>9}{'plain MB':>9}" + "".join(f"{m + ' ratio':>20}{'MB':>7}" for m in dp_modes)
    say(header)
    for arch in arch_names:
        for size in sizes:
            runner = Runner(arch, size, shared_width, fixed_batches(samples, size, batch_size, dev), names, dev)
            try:
                result = measure(runner, names, repeats, opacus_steps, memory, CLOCKS[clock])
            finally:
                runner.close()
            plain_s = result["plain"]["seconds"]
            row = f"{arch:<20}{size:>5}{plain_s:>9.3f}{result['plain']['peak_mb']:>9.0f}"
            for mode in dp_modes:
                ratio = result[mode]["seconds"] / plain_s
                row += f"{ratio:>19.2f}x{result[mode]['peak_mb']:>7.0f}"
                if as_json:
                    print(json.dumps({
                        "arch": arch, "image_size": size, "mode": mode, "ratio": round(ratio, 3),
                        "seconds": round(result[mode]["seconds"], 4), "plain_seconds": round(plain_s, 4),
                        "peak_mb": round(result[mode]["peak_mb"], 1), "plain_peak_mb": round(result["plain"]["peak_mb"], 1),
                        "threads": torch.get_num_threads(), "batch_size": batch_size, "samples": samples,
                        "timed": f"{repeats} epochs" if mode in EPOCH_TIMED else f"{opacus_steps} steps", "clock": clock, "device": str(dev),
                    }), flush=True)
            say(row)


if __name__ == "__main__":
    app()
