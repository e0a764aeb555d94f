"""``privfed data``: look at a data source and split it into client/server/test parties."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from privfed.data.split import PLANS

app = typer.Typer(
    help="Inspect a data source and split it into clients, server and test set.",
    no_args_is_help=True,
)

_PLAN_HELP = "How to size the parties: " + "; ".join(f"'{name}': {PLANS.get(name).__doc__}" for name in PLANS) + "."
_SOURCE_HELP = "A folder with one subfolder per class, a MedMNIST-style .npz file, or 'embedded' for the shipped brain-MRI subset."


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _open(source: str, image_size: int, console: Console):
    """open_dataset, with skipped-file warnings shown as one 'warning:' line instead of a traceback-like message."""
    from privfed.data import SkippedImagesWarning, open_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedImagesWarning)
        dataset = open_dataset(source, image_size)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for warning in caught:
        if issubclass(warning.category, SkippedImagesWarning):
            err.print(f"warning: {warning.message}", markup=False)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return dataset


def _sizes_text(sizes: Counter) -> str:
    if not sizes:
        return "none"
    common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
    if len(sizes) <= 3:
        return common
    areas = sorted(sizes, key=lambda s: s[0] * s[1])
    return f"{common}, ... {len(sizes)} sizes from {areas[0][0]}x{areas[0][1]} to {areas[-1][0]}x{areas[-1][1]}"


@app.command("inspect")
def inspect(
    source: str = typer.Argument(..., metavar="PATH", help=_SOURCE_HELP),
    clients: int = typer.Option(4, "--clients", help="Number of clients to size the plans for."),
    image_size: int = typer.Option(64, "--image-size", help="Side in pixels the images would be resized to (only checked here)."),
) -> None:
    """Show classes, image counts and sizes, and whether the reference plan fits."""
    from privfed.data.split import SplitPlan

    console = _console()
    started = time.perf_counter()
    dataset = _open(source, image_size, console)
    counts = dataset.class_counts()
    total = len(dataset)
    table = Table(title=f"{dataset.source}", title_justify="left")
    table.add_column("label", justify="right")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("share", justify="right")
    for label, (name, n) in enumerate(counts.items()):
        table.add_row(str(label), name, str(n), f"{n / total:.1%}")
    table.add_row("", "total", str(total), "100.0%", style="bold")
    console.print(table)
    console.print(f"image sizes seen: {_sizes_text(dataset.native_sizes())}", markup=False)
    if dataset.skipped:
        console.print(f"skipped: {len(dataset.skipped)} unreadable file(s)", markup=False)
    ratio = max(counts.values()) / max(1, min(counts.values()))
    console.print(f"class balance: 1 : {ratio:.1f} (largest to smallest class)", markup=False)
    reference = SplitPlan().sizes_for(clients, total)
    verdict = "fits" if reference.total <= total else f"does NOT fit (short by {reference.total - total}); use --plan fractions or --plan sizes"
    console.print(f"reference plan (--plan seed) needs {reference.total} images ({reference.describe()}); {total} exist: {verdict}", markup=False)
    fractions = SplitPlan("fractions").sizes_for(clients, total)
    console.print(f"--plan fractions would give {fractions.describe()} ({fractions.total} of {total} images)", markup=False)
    console.print(f"[dim]inspected in {time.perf_counter() - started:.1f} s[/dim]")


@app.command("split")
def split(
    source: str = typer.Argument(..., metavar="PATH", help=_SOURCE_HELP),
    out: Path = typer.Option(Path("split.json"), "--out", "-o", help="Where to write the split (JSON with the ids of each party)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same data and seed always give the same split."),
    plan: str = typer.Option("seed", "--plan", help=_PLAN_HELP),
    clients: int = typer.Option(4, "--clients", help="Number of clients."),
    client_size: Optional[int] = typer.Option(None, "--client-size", help="Images per client (with --plan sizes)."),
    server_size: Optional[int] = typer.Option(None, "--server-size", help="Images for the server (with --plan sizes; 0 allowed)."),
    test_size: Optional[int] = typer.Option(None, "--test-size", help="Images in the shared test set (with --plan sizes)."),
    clients_fraction: Optional[float] = typer.Option(None, "--clients-fraction", help="Share of all images given to the clients together, in equal parts (with --plan fractions; default 0.6)."),
    server_fraction: Optional[float] = typer.Option(None, "--server-fraction", help="Share of all images given to the server (with --plan fractions; default 0.15)."),
    test_fraction: Optional[float] = typer.Option(None, "--test-fraction", help="Share of all images in the test set (with --plan fractions; default 0.25)."),
    dirichlet_alpha: Optional[float] = typer.Option(None, "--dirichlet-alpha", help="Give clients label skew drawn from Dirichlet(alpha) (Hsu et al. 2019); small (0.1-0.5) = strong skew, large (100) = almost none; server and test stay stratified."),
    image_size: int = typer.Option(64, "--image-size", help="Side in pixels images are resized to (only checked here; training chooses its own)."),
) -> None:
    """Deal the images to clients, server and test set (disjoint, stratified by class) and write split.json."""
    from privfed.data import SplitPlan, make_split, save_split
    from privfed.data.split import class_counts

    console = _console()
    split_plan = SplitPlan(
        kind=plan,
        client_size=client_size,
        server_size=server_size,
        test_size=test_size,
        clients_fraction=clients_fraction,
        server_fraction=server_fraction,
        test_fraction=test_fraction,
        dirichlet_alpha=dirichlet_alpha,
    )
    dataset = _open(source, image_size, console)
    result = make_split(dataset, clients, split_plan, seed)
    save_split(result, out)
    table = Table(title=f"{dataset.source}: --plan {plan}, seed {seed}", title_justify="left")
    table.add_column("party")
    table.add_column("images", justify="right")
    for name in dataset.classes:
        table.add_column(name, justify="right")
    for party, ids in result.parties().items():
        table.add_row(party, str(len(ids)), *(str(n) for n in class_counts(ids, dataset)))
    console.print(table)
    used = sum(len(ids) for ids in result.parties().values())
    console.print(f"wrote {out} ({used} of {len(dataset)} images used)", markup=False)
