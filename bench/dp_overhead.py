"""Time one local epoch with and without sample-level DP, per architecture.

Same data, same model initialisation, same process; plain and DP epochs are interleaved
and the median over ``--repeats`` is kept, so load from other processes hits both alike.
The DP epoch runs through :meth:`privfed.dp.SampleLevelPrivacy.training` (book-keeping
per-sample clipping); ``--compare-hooks`` also times Opacus' stock hooks mode
(GradSampleModule + DPOptimizer), the alternative it replaced.

    .venv/bin/python bench/dp_overhead.py --archs simple --image-size 224
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch
import typer
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from privfed.dp import DPConfig, SampleLevelPrivacy
from privfed.models import ARCHITECTURES, build_model

app = typer.Typer(add_completion=False)


def plain_epoch(model, x, y, batch_size, generator, device) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(y), generator=generator)
    for start in range(0, len(y), batch_size):
        index = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[index].to(device)), y[index].to(device)).backward()
        optimizer.step()


@contextmanager
def opacus_hooks(model, optimizer, loader, generator, sigma, clip):
    from opacus import GradSampleModule
    from opacus.data_loader import DPDataLoader
    from opacus.optimizers import DPOptimizer

    gsm = GradSampleModule(model)
    try:
        opt = DPOptimizer(optimizer, noise_multiplier=sigma, max_grad_norm=clip, expected_batch_size=loader.batch_size)
        yield gsm, opt, DPDataLoader(loader.dataset, sample_rate=loader.batch_size / len(loader.dataset), generator=generator)
    finally:
        gsm.cleanup()


def dp_epoch(model, x, y, batch_size, generator, device, hooks: bool) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    if hooks:
        context = opacus_hooks(model, optimizer, loader, generator, 1.0, 1.0)
    else:
        privacy = SampleLevelPrivacy(DPConfig("sample", noise_multiplier=1.0), len(y), batch_size, 1, 1)
        context = privacy.training(model, optimizer, loader, generator)
    with context as (pmodel, popt, ploader):
        for xb, yb in ploader:
            popt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(pmodel(xb.to(device)), yb.to(device)).backward()
            popt.step()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


@app.command()
def main(
    archs: str = typer.Option("simple", help=f"Comma-separated, from: {', '.join(ARCHITECTURES)}; or 'all'."),
    image_size: int = typer.Option(224, help="Image side in pixels."),
    samples: int = typer.Option(128, help="Images in the client's epoch."),
    batch_size: int = typer.Option(32, help="Batch size (DP: expected Poisson batch size)."),
    shared_width: int = typer.Option(1024, help="Width of the shared layer."),
    repeats: int = typer.Option(3, help="Epochs timed per variant (median kept)."),
    threads: int = typer.Option(1, help="torch CPU threads."),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
    compare_hooks: bool = typer.Option(False, help="Also time Opacus' stock hooks mode."),
) -> None:
    torch.set_num_threads(threads)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    names = ARCHITECTURES if archs == "all" else archs.split(",")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(samples, 3, image_size, image_size, generator=g)
    y = torch.randint(0, 2, (samples,), generator=g)
    table = Table(title=f"seconds per local epoch: {samples} images {image_size}x{image_size}, batch {batch_size}, {dev}")
    for col in ("arch", "plain", "dp", "ratio", *(("opacus hooks", "hooks ratio") if compare_hooks else ())):
        table.add_column(col, justify="right")
    console = Console()
    for arch in names:
        torch.manual_seed(0)
        model = build_model(arch, image_size=image_size, shared_width=shared_width, dp=True).to(dev).train()
        variants = {"plain": lambda: plain_epoch(model, x, y, batch_size, g, dev),
                    "dp": lambda: dp_epoch(model, x, y, batch_size, g, dev, hooks=False)}
        if compare_hooks:
            variants["hooks"] = lambda: dp_epoch(model, x, y, batch_size, g, dev, hooks=True)
        for fn in variants.values():  # warm-up
            fn()
        times = {k: [] for k in variants}
        for _ in range(repeats):
            for k, fn in variants.items():
                times[k].append(timed(fn))
        med = {k: statistics.median(v) for k, v in times.items()}
        row = [arch, f"{med['plain']:.3f}", f"{med['dp']:.3f}", f"{med['dp'] / med['plain']:.2f}x"]
        if compare_hooks:
            row += [f"{med['hooks']:.3f}", f"{med['hooks'] / med['plain']:.2f}x"]
        table.add_row(*row)
        console.print(f"{arch}: plain {med['plain']:.3f}s dp {med['dp']:.3f}s ratio {med['dp'] / med['plain']:.2f}x")
    console.print(table)


if __name__ == "__main__":
    app()
