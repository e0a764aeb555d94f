"""``privfed train``: build a TrainConfig from preset < --config < options, run it, print a table.

Algorithm, aggregation, architecture and preset choices come from their registries, so a
new entry shows up in ``--help`` without editing this file.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from privfed.cli import speed_options, split_options
from privfed.errors import PrivfedError


def _ints(option: str, text: Optional[str]) -> int | list[int] | None:
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PrivfedError(f"{option}: expected an integer or a comma list of integers, got {text!r}") from None
    if not values:
        raise PrivfedError(f"{option}: empty value")
    return values[0] if len(values) == 1 else values


def _names(text: Optional[str]) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def register(app: typer.Typer) -> None:
    from privfed.federated import AGGREGATIONS, ALGORITHMS, PRESETS
    from privfed.models import ARCHITECTURES

    algorithms = ", ".join(ALGORITHMS.names())
    aggregations = ", ".join(AGGREGATIONS.names())
    presets = ", ".join(PRESETS)
    archs = ", ".join(ARCHITECTURES)
    from privfed.dp import LEVEL_HELP
    from privfed.dp.config import NEIGHBOURING_HELP

    dp_help = "Differential privacy level. " + " ".join(f"{name}: {text}" for name, text in LEVEL_HELP.items())

    @app.command("train")
    def train(
        preset: Optional[str] = typer.Option(None, help=f"Named bundle of options: {presets} (default quick without --data)."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML file of TrainConfig fields; options override it."),
        data: Optional[str] = typer.Option(None, help="Image folder, or 'embedded' for the bundled brain-MRI subset."),
        algorithm: Optional[str] = typer.Option(None, help=f"One of: {algorithms}."),
        arch: Optional[str] = typer.Option(None, help=f"Architecture, or a comma list, one per client: {archs}."),
        server_arch: Optional[str] = typer.Option(None, help="Server model architecture (partial)."),
        shared_width: Optional[str] = typer.Option(None, help="Width W of the shared layer, or a comma list per client."),
        common_width: Optional[int] = typer.Option(None, help="Common width h for partial (default: largest width)."),
        num_clients: Optional[int] = typer.Option(None, help="Number of clients (default: length of --arch, else 4)."),
        clients_per_round: Optional[int] = typer.Option(None, help="Clients sampled each round (default: all)."),
        rounds: Optional[int] = typer.Option(None, help="Communication rounds."),
        local_epochs: Optional[str] = typer.Option(None, help="Local epochs per round, or a comma list per client."),
        batch_size: Optional[int] = typer.Option(None, help="Local batch size."),
        lr: Optional[float] = typer.Option(None, help="Local learning rate."),
        optimizer: Optional[str] = typer.Option(None, help="sgd or adam."),
        momentum: Optional[float] = typer.Option(None, help="SGD momentum (default 0.9)."),
        lr_schedule: Optional[str] = typer.Option(None, help="Learning rate over rounds: constant, or cosine (decays to ~0 by the last round)."),
        class_weighting: Optional[str] = typer.Option(None, help="balanced (default: each image's loss weighted by n / (classes x n_class) of its party, so an imbalanced party does not learn to answer only its larger class) or none."),
        mu: Optional[float] = typer.Option(None, help="FedProx proximal weight (default 0.01)."),
        aggregation: Optional[str] = typer.Option(None, help=f"Aggregation rule G: {aggregations}."),
        trim_fraction: Optional[float] = typer.Option(None, help="Fraction cut at each end by trimmed_mean (default 0.1)."),
        server_epochs: Optional[int] = typer.Option(None, help="Server epochs on its own data per round (partial; 0 = plain aggregation)."),
        image_size: Optional[int] = typer.Option(None, help="Image side in pixels."),
        plan: Optional[str] = typer.Option(None, help=split_options.PLAN_HELP),
        client_size: Optional[int] = split_options.client_size_option(),
        server_size: Optional[int] = split_options.server_size_option(),
        test_size: Optional[int] = split_options.test_size_option(),
        clients_fraction: Optional[float] = split_options.clients_fraction_option(),
        server_fraction: Optional[float] = split_options.server_fraction_option(),
        test_fraction: Optional[float] = split_options.test_fraction_option(),
        dirichlet_alpha: Optional[float] = split_options.dirichlet_alpha_option(),
        seed: Optional[int] = typer.Option(None, help="Seed of every random stream (default 0)."),
        observe: Optional[str] = typer.Option(None, help="Rounds whose traffic is saved for attacks: first,last | all | none | 1,3,5."),
        device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
        precision: Optional[str] = speed_options.precision_option(),
        channels_last: Optional[bool] = speed_options.channels_last_option(),
        eval_every: Optional[int] = speed_options.eval_every_option(),
        dp_flag: bool = typer.Option(False, "--dp", help="Turn on DP-SGD on each client (same as --dp-level sample)."),
        dp: Optional[str] = typer.Option(None, "--dp-level", help=dp_help),
        noise_multiplier: Optional[float] = typer.Option(None, help="DP noise multiplier (or give --target-epsilon)."),
        max_grad_norm: Optional[float] = typer.Option(None, help="DP clipping norm."),
        target_epsilon: Optional[float] = typer.Option(None, help="DP target epsilon (solves the noise multiplier)."),
        delta: Optional[float] = typer.Option(None, help="DP delta (default min(1e-5, 1/n))."),
        clipping: Optional[str] = typer.Option(None, help="DP-SGD clipping: flat (each image's whole gradient to --max-grad-norm) or per-layer (each layer's part to --max-grad-norm / sqrt(layers): same bound and epsilon, and the small classifier layer keeps a usable share of the budget)."),
        neighbouring: Optional[str] = typer.Option(None, help="What epsilon is a promise about. " + " ".join(
            f"{name}: {text}." for name, text in NEIGHBOURING_HELP.items()) + " Default: replace for --dp-level client, add-remove for sample."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<time>-<algorithm>)."),
        resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory after its last finished round."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Train federated (or local / centralized baseline) models and write a run directory."""
        from privfed.federated import build_config, run_training

        options = {
            "preset": preset, "data": data, "algorithm": algorithm, "archs": _names(arch), "server_arch": server_arch,
            "shared_width": _ints("--shared-width", shared_width), "common_width": common_width,
            "num_clients": num_clients, "clients_per_round": clients_per_round, "rounds": rounds,
            "local_epochs": _ints("--local-epochs", local_epochs), "batch_size": batch_size, "lr": lr,
            "optimizer": optimizer, "momentum": momentum, "lr_schedule": lr_schedule,
            "class_weighting": class_weighting, "mu": mu, "aggregation": aggregation,
            "trim_fraction": trim_fraction, "server_epochs": server_epochs, "image_size": image_size,
            "plan": split_options.plan_value(plan, client_size=client_size, server_size=server_size, test_size=test_size,
                                             clients_fraction=clients_fraction, server_fraction=server_fraction,
                                             test_fraction=test_fraction, dirichlet_alpha=dirichlet_alpha),
            "seed": seed, "observe": observe, "device": device, "precision": precision, "channels_last": channels_last,
            "eval_every": eval_every,
        }
        if dp_flag and dp is None:
            dp = "sample"
        dp_options = {"level": dp, "noise_multiplier": noise_multiplier, "max_grad_norm": max_grad_norm,
                      "target_epsilon": target_epsilon, "delta": delta, "neighbouring": neighbouring, "clipping": clipping}
        command = "privfed " + shlex.join(sys.argv[1:])
        if resume is not None:
            flags = {**options, **{f"dp_{k}" if k == "level" else k: v for k, v in dp_options.items()},
                     "config": config, "out": out}
            given = [k for k, v in flags.items() if v is not None]
            if given:
                option = {"archs": "arch", "plan": "plan"}.get(given[0], given[0]).replace("_", "-")
                raise PrivfedError(f"--resume continues {resume} with its saved config.json; drop --{option}")
            summary = run_training(None, resume, resume=True, progress=not quiet, command=command)
            _print(summary, resume)
            return
        if options["num_clients"] is None:
            lengths = [len(v) for v in (options["archs"], options["shared_width"], options["local_epochs"]) if isinstance(v, list)]
            if lengths:
                options["num_clients"] = max(lengths)
        dp_values = {k: v for k, v in dp_options.items() if v is not None}
        if dp_values:
            options["dp"] = dp_values
        train_config = build_config(options, config)
        out_dir = out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{train_config.algorithm}"
        summary = run_training(train_config, out_dir, progress=not quiet, command=command)
        _print(summary, out_dir)


def _print(summary: dict, out_dir: Path) -> None:
    from rich.console import Console

    from privfed.federated.progress import summary_table

    console = Console()
    console.print(summary_table(summary))
    console.print(f"run directory: {out_dir}")
